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


def test_requires_python_covers_the_c_api_the_extension_uses():
    import re
    import tomllib
    from pathlib import Path

    project = tomllib.loads(open(os.path.join(ROOT, "pyproject.toml")).read())["project"]
    m = re.fullmatch(r">=\s*3\.(\d+)", project["requires-python"])
    assert m, project["requires-python"]
    declared = int(m.group(1))
    # the newest C API call decides the lowest Python the extension builds with
    needs = {"PyType_GetModuleByDef": 11, "Py_NewRef": 10, "Py_XNewRef": 10}
    used = {name: minor for name, minor in needs.items()
            if any(name in p.read_text() for p in Path(ROOT, "csrc").rglob("*.[ch]"))}
    assert declared >= max(used.values(), default=0), used
    assert sys.version_info >= (3, declared)  # declared what is tested: this interpreter
    minors = sorted(int(c.rsplit(".", 1)[1]) for c in project["classifiers"]
                    if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c))
    assert minors and minors[0] == declared, minors


def test_one_version():
    import re
    import denet

    text = open(os.path.join(ROOT, "pyproject.toml")).read()
    assert not re.search(r'(?m)^version\s*=\s*"', text), "the version lives in denet.__version__ only"
    assert 'version = {attr = "denet.__version__"}' in text
    assert re.fullmatch(r"\d+\.\d+\.\d+", denet.__version__)
