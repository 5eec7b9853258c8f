"""The subcommands of ``symbn``: one module each, with ``add_parser`` and ``run``."""
