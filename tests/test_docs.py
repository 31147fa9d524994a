"""The README and docs/ pages link only to files and headings that exist."""
from __future__ import annotations

import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[1]
PAGES = [REPO / 'README.md', *sorted((REPO / 'docs').glob('*.md'))]
LINK = re.compile(r'\]\(([^)\s]+)\)')


def anchor(heading: str) -> str:
  """GitHub's anchor of a Markdown heading."""
  text = re.sub(r'[^\w\- ]', '', heading.strip().lower())
  return text.replace(' ', '-')


def anchors(page: pathlib.Path) -> set[str]:
  """Anchors of every heading of a page (code blocks skipped)."""
  found, in_code = set(), False
  for line in page.read_text().splitlines():
    if line.startswith('```'):
      in_code = not in_code
    elif not in_code and line.startswith('#'):
      found.add(anchor(line.lstrip('#')))
  return found


def test_relative_links_resolve():
  broken = []
  for page in PAGES:
    for target in LINK.findall(page.read_text()):
      if re.match(r'[a-z]+://', target):
        continue
      path, _, fragment = target.partition('#')
      file = (page.parent / path).resolve() if path else page
      if not file.exists():
        broken.append(f'{page.name}: {target} (no such file)')
        continue
      if fragment and file.suffix == '.md' and fragment not in anchors(file):
        broken.append(f'{page.name}: {target} (no such heading)')
  assert not broken, '\n'.join(broken)


def test_readme_stays_short():
  # About 8 KB of prose, plus the tables and figures of the world-model
  # study (issue 10) and of its equilibrium preset (issue 18).
  assert len((REPO / 'README.md').read_bytes()) < 12_500
