"""Print the requirements of some of pyproject.toml's extras, one per line, for an image's
dependency layer: `python docker/requirements.py worker > /tmp/requirements.txt`.

The images install their dependencies before they copy the source, so a change to the code
does not download TensorFlow again; the project itself is installed afterwards with --no-deps.
"""

import sys
import tomllib

PROJECT = "classroom-attendance"


def requirements(extras: list[str]) -> list[str]:
    with open("pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    optional = project["optional-dependencies"]
    out, todo, seen = list(project["dependencies"]), list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for req in optional[extra]:
            if req.startswith(PROJECT + "["):
                todo += req[len(PROJECT) + 1 : -1].split(",")
            else:
                out.append(req)
    return sorted(set(out))


if __name__ == "__main__":
    print("\n".join(requirements(sys.argv[1:])))
