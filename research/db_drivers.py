"""Which database driver SQLAlchemy picks for a URL, and true advice when it is missing.

A ``postgresql://`` URL names no driver: SQLAlchemy 2.1 then uses psycopg (version 3),
2.0 used psycopg2. Telling a user who has psycopg2 installed to "pip install psycopg2"
sends them the wrong way; :func:`missing_driver_advice` says which driver SQLAlchemy chose
for *this* URL, which drivers for that database are installed, and how to name one in
the URL (``postgresql+psycopg2://``) or install the chosen one.
"""

from __future__ import annotations

import importlib.util

# dialect driver name -> (module to import, pip package)
_DRIVERS: dict[str, dict[str, tuple[str, str]]] = {
    "postgresql": {
        "psycopg2": ("psycopg2", "psycopg2-binary"),
        "psycopg": ("psycopg", "'psycopg[binary]'"),
        "pg8000": ("pg8000", "pg8000"),
    },
    "mysql": {
        "mysqldb": ("MySQLdb", "mysqlclient"),
        "pymysql": ("pymysql", "pymysql"),
        "mysqlconnector": ("mysql.connector", "mysql-connector-python"),
    },
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_driver_advice(url: str) -> str:
    """What to do when SQLAlchemy cannot import the driver of *url* (one sentence or two)."""
    import sqlalchemy
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    backend = parsed.get_backend_name()
    try:
        chosen = parsed.get_dialect().driver
    except Exception:  # an unknown dialect: SQLAlchemy's own message says it
        return f"check the URL's scheme '{parsed.drivername}'"
    drivers = _DRIVERS.get(backend, {})
    module, package = drivers.get(chosen, (chosen, chosen))
    named = "+" in parsed.drivername
    how = (f"the URL names the '{chosen}' driver" if named
           else f"SQLAlchemy {sqlalchemy.__version__} uses the '{chosen}' driver for {backend}:// URLs")
    installed = [name for name, (mod, _) in drivers.items() if name != chosen and _installed(mod)]
    text = f"{how}, and '{module}' is not installed: pip install {package}"
    if installed:
        example = parsed.set(drivername=f"{backend}+{installed[0]}").render_as_string(hide_password=True)
        text += (f", or use the installed {' / '.join(installed)} by naming it in the URL: {example}")
    return text
