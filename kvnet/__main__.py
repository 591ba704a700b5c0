from kvnet.cli.main import app

app()
