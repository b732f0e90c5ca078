"""python -m meterhub"""

from meterhub.cli import app

app(prog_name="meterhub")
