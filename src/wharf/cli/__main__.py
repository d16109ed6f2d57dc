from wharf.cli.main import app

app(prog_name="wharf")
