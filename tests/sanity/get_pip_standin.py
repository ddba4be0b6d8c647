"""Offline stand-in for ansible-test's pip bootstrap script (get-pip.py).

ansible-test downloads get-pip.py from a host this project's machines cannot
reach; it uses ~/.ansible/test/cache/get_pip_<version>.py if present. This
stand-in installs pip from the interpreter's bundled wheel (ensurepip) and then
lets that pip install what ansible-test asked for, from the package index.
"""

import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.run([sys.executable, "-m", "ensurepip", "--upgrade"], check=True, stdout=subprocess.DEVNULL)
subprocess.run([sys.executable, "-m", "pip", "install", "--upgrade", *args], check=True)
