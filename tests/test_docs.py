"""The README's schema table is generated from denet.SCHEMA, the one source of truth."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_readme_schema_table_is_current():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "gen_schema_doc.py"),
                        "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_readme_names_the_two_setup_commands():
    text = open(os.path.join(ROOT, "README.md")).read()
    assert "make demo" in text and "make test" in text
