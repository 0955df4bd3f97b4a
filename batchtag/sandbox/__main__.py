from batchtag.sandbox.cli import sandbox_command

sandbox_command(prog_name="batchtag sandbox")
