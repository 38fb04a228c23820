"""The course site: one static folder built from the executed notebooks, for students to read before a class.

    diffstyle-lab notebooks                   # the main job → outputs/notebooks/NN_name.ipynb
    diffstyle-lab site                        # → outputs/site/index.html (open it in any browser)
    diffstyle-lab site --executed DIR --out DIR

It writes ``index.html`` — what the course covers, the notebooks in order with what each teaches, the
notebooks to read first, reading time and compute time (the one stated in the notebook and the one
measured by the run that made the pages; all but the last from each executed notebook's own metadata,
:mod:`diffstyle_lab.lab.catalogue`), the prerequisites and the glossary (from ``notebooks/README.md``) — one page per
executed notebook with its figures and printed outputs, previous/next links at the top and bottom of
every page, the exercise's solution folded in a ``<details>`` element, and ``method.html`` (from
``docs/method.md``) where the checkout has it. Links between notebooks, to the README's glossary and
to the method notes are rewritten to the site's pages; a relative link to a file the site does not
hold (a source file of the checkout) keeps its text and loses its link, so no link in the site points
nowhere. An ipywidgets view cannot run in a static page: its place says so, and its static figure follows. Nothing is fetched: no CDN script (require.js, MathJax, the widget manager) is referenced,
images are embedded in the pages, so the folder works offline and from ``file://``.

**Why nbconvert with a generated index, not Jupyter Book 2 / MyST.** ``jupyter book build --html``
(mystmd) downloads its site theme at build time (``https://api.mystmd.org/templates/site/myst/book-theme``,
then the theme from GitHub, cached in ``_build/templates``; MyST's guide says so, "this will download
the default book-theme"), and these machines reach only the PyPI, npm and Debian registries — the
build cannot run here or in this project's CI. nbconvert is already a dependency of the ``notebooks``
extra, renders exactly the executed outputs, and needs no network.
"""

from __future__ import annotations

import argparse
import html
import re
import sys
from pathlib import Path

from ..fileio import read_json, write_text
from .catalogue import NAME, CatalogueError, NotebookInfo, read_info
from .run_notebooks import DEFAULT_OUT, ROOT, notebook_dir

DEFAULT_SITE = Path("outputs") / "site"
COUNTS = "zero one two three four five six seven eight nine ten eleven twelve".split()

# the lab template without any script from a CDN (require.js, the widget manager, MathJax, mermaid):
# the site must render offline; the notebooks use no maths, and each widget has a static figure
TEMPLATE = r"""{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block extra_css %}<style>{{ resources.course_css }}</style>{% endblock extra_css %}
{% block rawcell scoped %}
{%- if cell.metadata.get('course_fold') -%}{{ cell.source }}{%- else -%}{{ super() }}{%- endif -%}
{%- endblock rawcell %}
{%- block data_widget_view scoped %}
<div class="jp-OutputArea-output widget-note">(An interactive view — sliders, toggles — runs here when the notebook is
opened in Jupyter; this page shows its static figure below, drawn with fixed settings.)</div>
{%- endblock data_widget_view -%}
{% block data_png scoped %}
<div class="jp-RenderedImage jp-OutputArea-output {{ extra_class }}">
<img src="data:image/png;base64,{{ output.data['image/png'] | escape_html }}" alt="a figure of {{ resources.course_title | escape_html }}">
</div>
{%- endblock data_png %}
"""

CSS = """
nav.course { font: 14px/1.5 system-ui, sans-serif; display: flex; gap: 1.2em; flex-wrap: wrap;
  padding: .6em 1em; margin: 0 0 1em; background: #f3f5f8; border: 1px solid #d8dde5; border-radius: 6px; }
nav.course a { text-decoration: none; } nav.course .here { color: #555; }
.widget-note { font: italic 13px system-ui, sans-serif; color: #555; padding: .3em 0; }
details.solution { border: 1px solid #c9d3e0; border-radius: 6px; padding: .3em .8em; margin: .8em 0; }
details.solution > summary { cursor: pointer; font: 600 14px system-ui, sans-serif; color: #2a4d7a; }
body.course-page { max-width: 1100px; margin: 0 auto; padding: 1em; font: 15px/1.55 system-ui, sans-serif; }
body.course-page table { border-collapse: collapse; margin: .8em 0; }
body.course-page th, body.course-page td { border: 1px solid #d8dde5; padding: .35em .6em; vertical-align: top; }
body.course-page th { background: #f3f5f8; text-align: left; }
body.course-page code { background: #f3f5f8; padding: 0 .2em; border-radius: 3px; }
body.course-page pre code { display: block; padding: .6em; overflow-x: auto; }
"""


class SiteError(ValueError):
    """Nothing to build from (the message names the folder and the command that makes it)."""


# ---------------------------------------------------------------------------------------------
# Reading what there is

def executed_notebooks(executed) -> list[Path]:
    """The executed notebooks ``NN_name.ipynb`` of ``executed``, in order; :class:`SiteError` if none."""
    d = Path(executed)
    found = sorted(p for p in d.glob("[0-9][0-9]_*.ipynb") if NAME.match(p.stem)) if d.is_dir() else []
    if not found:
        raise SiteError(f"--executed {d}: no executed notebooks (NN_name.ipynb) there; run the main job first "
                        f"(`diffstyle-lab notebooks --out {d}`, or `--quick` for a smoke run)")
    return found


def readme_sections(text: str) -> dict[str, str]:
    """``{heading: markdown}`` of a Markdown file's ``##`` sections (``""``: the part before the first)."""
    out, key, buf, fence = {}, "", [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fence = not fence
        if not fence and line.startswith("## "):
            out[key] = "\n".join(buf).strip()
            key, buf = line[3:].strip(), []
        else:
            buf.append(line)
    out[key] = "\n".join(buf).strip()
    return out


def executed_infos(found: list[Path], executed) -> list[NotebookInfo]:
    """The catalogue entries of the executed notebooks (papermill keeps the notebook's metadata);
    :class:`SiteError` naming the notebook where its metadata is missing or invalid."""
    try:
        return [read_info(p) for p in found]
    except CatalogueError as e:
        raise SiteError(f"{e} — or, where the source has it, rerun the main job "
                        f"(`diffstyle-lab notebooks --out {executed}`)") from None


def slug(text: str) -> str:
    """A heading's anchor as GitHub makes it (so ``method.md#2-notation-…`` links keep working)."""
    t = re.sub(r"<[^>]+>", "", html.unescape(text)).strip().lower()
    t = re.sub(r"[^\w\- ]", "", t)
    return t.replace(" ", "-")


def markdown_html(text: str) -> str:
    """Markdown → HTML (mistune, nbconvert's own renderer), with GitHub-style ids on the headings."""
    import mistune
    body = mistune.html(text)
    return re.sub(r"<h([1-6])>(.*?)</h\1>", lambda m: f'<h{m.group(1)} id="{slug(m.group(2))}">{m.group(2)}</h{m.group(1)}>',
                  body, flags=re.S)


# ---------------------------------------------------------------------------------------------
# Links

def rewrite_links(page: str, pages: set[str]) -> str:
    """Point the notebooks' links at the site: ``NN_name.ipynb`` → ``NN_name.html``, ``README.md`` →
    ``index.html``, ``../docs/method.md`` → ``method.html`` (anchors kept); a relative link to anything
    the site does not hold keeps its text and loses its link."""
    def target(href: str) -> str | None:
        if re.match(r"^(https?:|mailto:|data:|#)", href):
            return href
        path, _, anchor = href.partition("#")
        name = Path(path).name
        if name.endswith(".ipynb") and name[:-6] + ".html" in pages:
            new = name[:-6] + ".html"
        elif name == "README.md" and "notebooks" in (path.split("/")[-2:-1] or ["notebooks"]):
            new = "index.html"
        elif name == "method.md" and "method.html" in pages:
            new = "method.html"
        elif name in pages:
            new = name
        else:
            return None
        return new + (f"#{anchor}" if anchor else "")

    def swap(m):
        quote, href = m.group(2), html.unescape(m.group(3))
        new = target(href)
        if new is None:
            return "<a data-unlinked=" + quote + html.escape(href) + quote
        return f"<a{m.group(1)}href={quote}{html.escape(new)}{quote}"

    page = re.sub(r"<a([^>]*?\s)href=([\"'])(.*?)\2", swap, page)
    return page


# ---------------------------------------------------------------------------------------------
# Pages

def nav(i: int, names: list[str], titles: dict[str, str]) -> str:
    prev = f'<a rel="prev" href="{names[i - 1]}.html">← {html.escape(titles[names[i - 1]])}</a>' if i > 0 else \
        '<a rel="prev" href="index.html">← course home</a>'
    nxt = f'<a rel="next" href="{names[i + 1]}.html">{html.escape(titles[names[i + 1]])} →</a>' \
        if i + 1 < len(names) else '<a rel="next" href="index.html">back to the course home →</a>'
    return (f'<nav class="course"><a href="index.html">Course home</a>{prev}'
            f'<span class="here">notebook {i + 1} of {len(names)}</span>{nxt}</nav>')


def fold_solutions(nb) -> int:
    """Wrap each code cell tagged ``solution`` in ``<details>`` (raw HTML cells around it); returns how many."""
    import nbformat
    cells, n = [], 0
    for c in nb.cells:
        if c.cell_type == "code" and "solution" in c.get("metadata", {}).get("tags", []):
            open_ = nbformat.v4.new_raw_cell('<details class="solution"><summary>Solution (click to open: '
                                             'try the exercise first)</summary>')
            close = nbformat.v4.new_raw_cell("</details>")
            for r in (open_, close):      # written as is (the template's rawcell block), only these two
                r.metadata["raw_mimetype"] = "text/html"
                r.metadata["course_fold"] = True
            cells += [open_, c, close]
            n += 1
        else:
            cells.append(c)
    nb.cells = cells
    return n


def notebook_page(ipynb: Path, i: int, names: list[str], titles: dict[str, str], pages: set[str]) -> tuple[str, int]:
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter
    nb = nbformat.read(str(ipynb), as_version=4)
    folded = fold_solutions(nb)
    exporter = HTMLExporter(extra_loaders=[jinja2.DictLoader({"course.html.j2": TEMPLATE})],
                            template_file="course.html.j2")
    body, _ = exporter.from_notebook_node(nb, resources={"course_css": CSS, "course_title": titles[ipynb.stem],
                                                               "metadata": {"name": titles[ipynb.stem]}})
    bar = nav(i, names, titles)
    body = body.replace("<main>", "<main>\n" + bar, 1)
    k = body.rfind("</main>")
    body = body[:k] + bar + "\n" + body[k:]
    return rewrite_links(body, pages), folded


def page(title: str, content: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1.0"><title>{html.escape(title)}</title>'
            f"<style>{CSS}</style></head>\n<body class=\"course-page\">\n{content}\n</body></html>\n")


def inline_html(text: str) -> str:
    """One line of Markdown as inline HTML (no enclosing paragraph)."""
    return markdown_html(text).strip().removeprefix("<p>").removesuffix("</p>")


def read_first(info: NotebookInfo) -> str:
    """The notebooks to read before ``info``, as links by number (a page the site lacks loses its link)."""
    return ", ".join(f'<a href="{n}.ipynb">{n[:2]}</a>' for n in info.prerequisites) or "—"


def index_page(infos: list[NotebookInfo], timings: dict, readme: dict, has_method: bool) -> str:
    run = timings.get("notebooks") and {r["notebook"]: r for r in timings["notebooks"]} or {}
    kind = "quick run" if timings.get("quick") else "full run"
    rows = []
    for k, i in enumerate(infos):
        r = run.get(i.name)
        measured = f"{r['cpu_s']:.0f} s CPU, {r['wall_s']:.0f} s wall ({kind})" if r else "—"
        rows.append(f"<tr><td>{k + 1}</td><td><a href=\"{i.name}.html\">{html.escape(i.heading)}</a></td>"
                    f"<td>{inline_html(i.teaches)}</td><td>{read_first(i)}</td>"
                    f"<td>{i.reading_minutes} min</td><td>{html.escape(i.compute)}</td><td>{measured}</td></tr>")
    intro = readme.get("", "").split("\n| # |")[0]
    intro = re.sub(r"^# .*\n", "", intro).strip().split("\n\n")[0]       # its first paragraph
    count = COUNTS[len(infos)] if len(infos) < len(COUNTS) else str(len(infos))
    parts = [f"<h1>diffstyle_lab — content injection in h-space, a course in {count} notebook"
             f"{'s' if len(infos) != 1 else ''}</h1>",
             '<nav class="course"><a href="index.html">Course home</a>'
             f'<a href="{infos[0].name}.html">start with {html.escape(infos[0].heading)} →</a>'
             '<a href="#prerequisites">prerequisites</a><a href="#glossary">glossary</a>'
             + ('<a href="method.html">method notes</a>' if has_method else "") + "</nav>",
             '<h2 id="what-the-course-covers">What the course covers</h2>', markdown_html(intro),
             '<h2 id="the-notebooks-in-order">The notebooks, in order</h2>',
             "<table><tr><th>#</th><th>notebook</th><th>what it teaches</th><th>read first</th><th>reading time</th>"
             "<th>compute (full run, stated in the notebook)</th><th>compute (the run these pages show)</th></tr>",
             *rows, "</table>",
             f"<p>Each page shows the notebook as executed by <code>diffstyle-lab notebooks</code>"
             f"{' (a <b>quick</b> smoke run: few steps, few pairs — numbers are rough)' if timings.get('quick') else ''}; "
             "each ends with an exercise whose solution is folded — try it before you open it.</p>"]
    for key, anchor in (("Prerequisites", "prerequisites"), ("Glossary", "glossary"), ("Exercises", "exercises")):
        if key in readme:
            parts += [f'<h2 id="{anchor}">{key}</h2>', markdown_html(readme[key])]
    return page("diffstyle_lab course", "\n".join(parts))


def build(executed=DEFAULT_OUT, out=DEFAULT_SITE, notebooks=None, method=None, echo=print) -> dict:
    """Build the site from the executed notebooks in ``executed`` into ``out``; returns
    ``{"out", "pages", "solutions_folded", "unlinked"}``. ``notebooks``: the folder with the README
    (default: :func:`~diffstyle_lab.lab.run_notebooks.notebook_dir`); ``method``: ``docs/method.md``
    (default: the checkout's, where there is one)."""
    found = executed_notebooks(executed)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SiteError(f"--out {out} is a file; pass a folder (it is created if missing)")
    src = notebook_dir(notebooks)
    readme_text = (src / "README.md").read_text(encoding="utf-8") if (src / "README.md").exists() else ""
    readme = readme_sections(readme_text)
    method = Path(method) if method else ROOT / "docs" / "method.md"
    has_method = method.is_file()
    infos = executed_infos(found, executed)
    names = [i.name for i in infos]
    titles = {i.name: i.heading for i in infos}
    pages = {n + ".html" for n in names} | {"index.html"} | ({"method.html"} if has_method else set())
    t = Path(executed) / "timings.json"
    timings = read_json(t, fix="; delete it, or rerun the main job") if t.exists() else {}
    out.mkdir(parents=True, exist_ok=True)
    folded = 0
    for i, p in enumerate(found):
        body, k = notebook_page(p, i, names, titles, pages)
        folded += k
        write_text(out / f"{p.stem}.html", body)
    write_text(out / "index.html", rewrite_links(index_page(infos, timings, readme, has_method), pages))
    if has_method:
        m = markdown_html(method.read_text(encoding="utf-8"))
        bar = '<nav class="course"><a href="index.html">Course home</a><a href="index.html#glossary">glossary</a></nav>'
        write_text(out / "method.html", rewrite_links(page("Method notes", bar + m), pages))
    unlinked = sum((out / n).read_text(encoding="utf-8").count("data-unlinked=") for n in pages)
    echo(f"{len(pages)} pages ({len(names)} notebooks, index{', method notes' if has_method else ''}), "
         f"{folded} solutions folded → {out / 'index.html'}")
    return {"out": str(out), "pages": sorted(pages), "solutions_folded": folded, "unlinked": unlinked}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="diffstyle-lab site",
                                 description="Build the course site (static HTML) from the executed notebooks.")
    ap.add_argument("--executed", default=str(DEFAULT_OUT),
                    help=f"the folder the main job wrote (default: {DEFAULT_OUT})")
    ap.add_argument("--out", default=str(DEFAULT_SITE), help=f"the site folder (default: {DEFAULT_SITE})")
    ap.add_argument("--notebooks", help="the folder of notebook sources with README.md (default: as the runner finds it)")
    return ap


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    try:
        build(a.executed, a.out, a.notebooks)
    except (ValueError, OSError) as e:
        print(f"diffstyle-lab site: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
