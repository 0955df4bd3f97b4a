"""List pages as Arrow tables (`batchtag.gcore._pages`): the same rows as json.loads +
from_pylist for any body, the same errors, and the reader's listing through them."""

from __future__ import annotations

import asyncio
import json

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchtag.config import Settings
from batchtag.errors import ApiError
from batchtag.gcore import Client, RateLimiter, TableClient, table_parser
from batchtag.inventory import API_SCHEMA, page_table
from batchtag.read import Reader
from tests.helpers import API_KEY

PARSE = table_parser(API_SCHEMA)
STRING_FIELDS = [f.name for f in API_SCHEMA if f.type == pa.string()]
INT_FIELDS = [f.name for f in API_SCHEMA if f.type == pa.int64()]

# What the API sends; in half the pages one field of one snapshot is what it should not
# send: a float or a numeric string where an integer is due, a number where text is due.
TEXT = st.one_of(st.text(max_size=12), st.sampled_from(["", "é😀", 'a"b\\c', "a\nb", "\x00"]))
ODD = st.sampled_from([250.0, 1.5, -0.0, 1e300, True, False, 0, 7, "12", "x", [], {}])
JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=6,
)
TAG = st.fixed_dictionaries(
    {"key": st.one_of(TEXT, st.none()), "value": st.one_of(TEXT, st.none())},
    optional={"read_only": st.one_of(st.booleans(), st.none()), "extra": JSON},
)
SNAPSHOT = st.fixed_dictionaries(
    {"id": st.one_of(st.uuids().map(str), TEXT)},
    optional={
        **{name: st.one_of(TEXT, st.none()) for name in STRING_FIELDS if name != "id"},
        **{name: st.one_of(st.integers(0, 2**40), st.none()) for name in INT_FIELDS},
        "tags": st.one_of(st.lists(TAG, max_size=4), st.none()),
        "description": JSON,
        "region": TEXT,
    },
)
FIELDS = [*STRING_FIELDS, *INT_FIELDS, "tags"]


@st.composite
def results(draw) -> list:
    snapshots = draw(st.lists(SNAPSHOT, max_size=6))
    if snapshots and draw(st.booleans()):
        at = draw(st.integers(0, len(snapshots) - 1))
        snapshots[at] = {**snapshots[at], draw(st.sampled_from(FIELDS)): draw(ODD)}
    return snapshots


PAGE = st.fixed_dictionaries(
    {"count": st.integers(0, 10**6), "results": results()}, optional={"next": JSON}
)


def outcome(make):
    """What `make()` returns, or the type of what it raises."""
    try:
        return make()
    except Exception as error:  # the two paths must fail alike
        return type(error)


@settings(max_examples=200, deadline=None)
@given(page=PAGE, indent=st.sampled_from([None, 2]))
def test_any_page_makes_the_rows_json_loads_and_from_pylist_make(page, indent):
    """The same table, or a BadResponse where from_pylist fails."""
    body = json.dumps(page, indent=indent).encode()
    want = outcome(lambda: page_table(json.loads(body)["results"]).to_pylist())
    got = outcome(lambda: PARSE(200, {}, body))
    if isinstance(want, type):
        assert got is ApiError
        return
    assert got["count"] == page["count"]
    assert page_table(got["results"]).to_pylist() == want


@pytest.mark.parametrize(
    "snapshot", [b'{"id": "a", "size": 250.0}', b'{"id": "a", "name": "x", "name": "y"}']
)
def test_what_the_arrow_reader_refuses_is_read_as_before(snapshot):
    body = b'{"count": 1, "results": [' + snapshot + b"]}"
    want = pa.Table.from_pylist(json.loads(body)["results"], schema=API_SCHEMA)
    assert PARSE(200, {}, body)["results"].equals(want)


@pytest.mark.parametrize(
    "snapshot, why",
    [
        (b'{"id": "a", "name": 5}', "does not fit the API's fields (ArrowTypeError: Expected"),
        (b'{"id": "a", "tags": {"k": "v"}}', "does not fit the API's fields (ArrowTypeError"),
        (b"7", "does not fit the API's fields (TypeError"),
        (b'{"id": null}', "a snapshot has no 'id'"),
        (b'{"name": "no id"}', "a snapshot has no 'id'"),
    ],
)
def test_a_snapshot_neither_reader_takes_is_a_bad_response_naming_why(snapshot, why):
    with pytest.raises(ApiError) as raised:
        PARSE(200, {}, b'{"count": 1, "results": [' + snapshot + b"]}")
    assert raised.value.exception_class == "BadResponse" and why in str(raised.value)


@pytest.mark.parametrize(
    "body",
    [b'{"count": 1}', b'{"count": 1, "results": null}', b'{"results": {"a": 1}}', b"[]"],
)
def test_a_body_that_is_not_a_list_page_is_the_same_bad_response(body):
    with pytest.raises(ApiError) as raised:
        PARSE(200, {}, body)
    assert raised.value.exception_class == "BadResponse"
    assert "a list page needs an object with a 'results' list" in str(raised.value)


def test_an_error_status_raises_its_api_error():
    with pytest.raises(ApiError) as raised:
        PARSE(503, {}, b'{"message": "busy", "exception_class": "Busy"}')
    assert (raised.value.status, raised.value.exception_class) == (503, "Busy")


def listing(server, tables: bool, **options):
    """Every page a Reader hands out, through a TableClient or the plain client."""

    async def go():
        async with Client(Settings(server.base_url, API_KEY)) as client:
            source = TableClient(client, API_SCHEMA) if tables else client
            reader = Reader(source, limiter=RateLimiter(1000.0), concurrency=4, **options)
            return [page async for page in reader.read_scope(1, 1)], reader

    return asyncio.run(go())


def test_table_pages_list_exactly_what_dict_pages_list(make_sandbox):
    server = make_sandbox(snapshots=2_500)
    tables, reader = listing(server, tables=True)
    dicts, _ = listing(server, tables=False)
    assert all(isinstance(page, pa.Table) for page in tables)
    assert [page.num_rows for page in tables] == [1000, 1000, 500]
    assert (
        pa.concat_tables(tables).to_pylist()
        == page_table(sum(dicts, [])).rename_columns(API_SCHEMA.names).to_pylist()
    )
    assert reader.stats.pages == 3 and not reader.stats.warnings


def test_table_pages_of_a_changing_scope_hand_out_every_survivor_once(make_sandbox):
    server = make_sandbox(snapshots=25_000, churn_after=3, churn_create=500, churn_delete=700)
    pages, reader = listing(server, tables=True)
    ids = pa.concat_tables(pages).column("id").to_pylist()
    assert len(ids) == len(set(ids))
    assert set(server.store.ids()) <= set(ids)
    assert reader.stats.passes == 2 and "count 25000 -> 24800" in reader.stats.warnings[0]
