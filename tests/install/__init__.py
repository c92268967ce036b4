"""The README's commands, run as printed on a copy of the checkout with a brand-new venv."""
