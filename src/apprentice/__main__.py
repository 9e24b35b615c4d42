from apprentice.cli import app

app(prog_name="apprentice")
