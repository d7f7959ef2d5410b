"""The README's layout table and the tree agree: every folder the table names exists, and every package of
hashtale/ has its row."""
import re

from hashtale.settings import PROJECT_ROOT

LAYOUT_ROW = re.compile(r"^\| `([^`]+)/` \|", re.M)  # | `folder/` | what it holds |


def test_the_readme_layout_table_names_the_folders_of_the_tree():
    listed = set(LAYOUT_ROW.findall((PROJECT_ROOT / "README.md").read_text()))
    assert [folder for folder in sorted(listed) if not (PROJECT_ROOT / folder).is_dir()] == []
    packages = {f"hashtale/{init.parent.name}" for init in (PROJECT_ROOT / "hashtale").glob("*/__init__.py")}
    assert sorted(packages - listed) == []
