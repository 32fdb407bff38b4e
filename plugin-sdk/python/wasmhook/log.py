"""Structured logging into the host's log; the host tags each line with the plugin, event,
delivery and tenant and keeps it with the attempt (`wasmhook deliveries show`).

    log.info("routed message", contact=contact_id, stage=stage)

Field values are turned into text. The host caps lines per delivery and drops the rest, so log
decisions, not loops; never log secrets or personal data you do not need. `print` also reaches
the host's log, as plain lines.
"""

from wit_world.imports import log as _wit


def write(level, message, fields):
    """Writes one line at `level` (a `wit_world.imports.log.Level`) with (key, value) pairs."""
    _wit.write(level, str(message), [(str(k), str(v)) for k, v in fields])


def trace(message, **fields):
    write(_wit.Level.TRACE, message, fields.items())


def debug(message, **fields):
    write(_wit.Level.DEBUG, message, fields.items())


def info(message, **fields):
    write(_wit.Level.INFO, message, fields.items())


def warn(message, **fields):
    write(_wit.Level.WARN, message, fields.items())


def error(message, **fields):
    write(_wit.Level.ERROR, message, fields.items())
