"""The automation process: runs the trusted Python files of the config's ``automations/``.

``host.main(spec)`` is the entry point the supervisor spawns; ``python -m
rtoc.frontends.automation --instance NAME --folder PATH`` runs the same loop by hand. The
API the files use, and the pure core, are in :mod:`rtoc.events.automation`.
"""
