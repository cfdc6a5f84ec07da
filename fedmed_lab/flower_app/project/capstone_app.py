"""Entry points of the capstone Flower app; the code lives in fedmed_lab.flower_app."""

from fedmed_lab.flower_app.client_app import app as client_app
from fedmed_lab.flower_app.server_app import app as server_app

__all__ = ["client_app", "server_app"]
