"""The column names and cell patterns of a manifest: plain facts, no heavy imports.

The patterns are RE2 syntax (pyarrow's regex engine) and match a whole cell.
"""

from __future__ import annotations

FORMS = ("long", "wide", "json")
CHANGE_FILE = "changes"  # the plan's `form` when its input is a change file (not a form)
OVERWRITE_COLUMN = "overwrite"  # long form: a rename may replace a different value
SNAPSHOT_COLUMN = "snapshot_id"
ID_COLUMNS = (SNAPSHOT_COLUMN, "project_id", "region_id")
LONG_COLUMNS = ("op", "key", "value")
TAGS_COLUMN = "tags"  # the json form's merge-patch column
NAME_COLUMN = "name"
TAG_PREFIX = "tag:"
TAG_FIELD, NAME_FIELD = "tag", "name"  # what a change is to: a tag, or the name
RO_PREFIX = "ro:"  # an inventory's read-only tag columns
VOLUME_TAG_PREFIX = "volume_tag:"  # an inventory's columns of the snapshot's volume's tags
OPS = ("set", "delete", "clear", "rename", "name")  # a Coded op is an index into this
DELETE_MARKER = "<delete>"  # the wide form's default "remove this tag" cell

# A tag key or value: 1-255 characters, no whitespace, no control character, no '='.
TAG_TEXT = r"[^\s\v\x{85}\pZ\p{Cc}=]{1,255}"
TAG_MAX = 255
# The part of TAG_TEXT any regex engine reads alike (Python re too): printable ASCII but
# space and '='. Every text it matches, TAG_TEXT matches.
PLAIN_TAG_TEXT = rf"[!-<>-~]{{1,{TAG_MAX}}}"
NAME_MIN, NAME_MAX = 3, 63
NAME_TEXT = r"[^\p{Cc}]*"  # a name may hold spaces, not control characters
UUID_LOWER = (
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # as batchtag writes it
)
UUID = "(?i)" + UUID_LOWER  # any case (RE2 and Python re)
POSITIVE_INT = r"0*[1-9][0-9]{0,17}"  # fits in int64 with room to spare
EXACT_FLOAT_LIMIT = 2**53  # every integer below this is exact in a float64
