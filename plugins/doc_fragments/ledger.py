# Copyright: baremetal.lb contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  ledger:
    description:
      - Where pools and allocations are kept between runs, on the control node - a path (an SQLite file), or a
        PostgreSQL database shared by every machine that runs playbooks on the same pools, as a C(postgresql://) URL
        or a libpq C(key=value) string (for example C(host=db.example dbname=lb user=lb sslmode=verify-full)).
      - A path has C(~) and environment variables expanded. A relative path that starts with C(word=) would read as
        C(key=value); write it as C(./word=...).
      - "SQLite: created on first write with owner-only permissions (directory C(0700), file C(0600))."
      - "PostgreSQL: the ledger is the schema C(baremetal_lb) of that database, created on first write (with its
        version) when the user may create schemas there; else set it up once as the owner with
        M(baremetal.lb.ledger) (O(baremetal.lb.ledger#module:state=present)).
        Needs the C(psycopg) library (version 3) on the control node.
        The password comes from the URL's C(user:password@), O(ledger_password), C(PGPASSFILE) or C(PGPASSWORD);
        a C(password=) keyword is refused, because Ansible would log it. TLS through the libpq parameters
        (C(sslmode), C(sslrootcert), ...). The password is never shown - results, errors and diffs show the
        URL with C(********) in its place."
      - Every module call is one transaction; concurrent playbook runs and forks (and, on PostgreSQL, other
        machines) wait for each other (up to 120 seconds), so an address is never handed out twice.
      - Set it once for all modules of the collection with C(module_defaults) and the
        C(group/baremetal.lb.ledger) action group (the modules that have a ledger).
    type: str
    default: ~/.local/state/baremetal-lb/ledger.sqlite3
  ledger_password:
    description:
      - The password for a PostgreSQL O(ledger), instead of writing it in the URL. Ignored for SQLite.
    type: str
requirements:
  - psycopg >= 3.1 (for a PostgreSQL ledger only)
notes:
  - >-
    These modules run on the control node; use C(delegate_to: localhost) and C(run_once: true)
    when the play targets other hosts.
"""
