"""One module per sub-command: ``add_parser(subparsers, help)`` sets ``func`` to its runner.

Modules import their stage lazily inside ``run`` so that ``--help`` does not load torch,
MAVSDK or the web stack."""
