"""The book: what the PDF and the EPUB hold, and their front matter.

The website and the book share one source tree. The book builders
(:data:`BOOK_BUILDERS`) leave out what only makes sense on a website:

* the documents named by ``essays_web_only`` (the authors' guide, the build
  benchmarks, the Browse page, the concept map), dropped from every toctree
  and marked orphan, so no warning says they are missing;
* pages only HTML builders generate (``genindex``, ``search``): LaTeX prints
  its own index, an EPUB adds its own and has no search;
* anything inside ``{only} web``. Each build carries one of two tags, ``web``
  or ``book``, so a page says ``{only} book`` for a preface and
  ``{only} web`` for its cards, feed and search, whatever the builder's
  format (an EPUB's format is ``html``, so ``{only} html`` cannot tell).

For LaTeX it also writes the front matter Sphinx's ``manual`` class lacks: a
title page with subtitle, authors and edition (no "Release"), a copyright and
licence page on its back, running heads that name the chapter, the PDF's
metadata, and chapters that open on the next page (``openany``). The
contents come after the preface: the root document places them with
``\\essaysbookcontents``.

For the EPUB it draws the cover (:data:`COVER`, with :mod:`.drawing`) and
fills in the description and the cover setting ``conf.py`` leaves unset.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docutils import nodes
from sphinx import addnodes
from sphinx.writers.latex import CR, LaTeXTranslator

from sphinx_essays import config as essays_config
from sphinx_essays import drawing
from sphinx_essays.config import LICENCES

if TYPE_CHECKING:
    from docutils.nodes import Element
    from sphinx.application import Sphinx
    from sphinx.config import Config

#: Builders whose output is the book rather than the website.
BOOK_BUILDERS = frozenset({"latex", "epub"})

#: Pages that only HTML builders generate, with their default titles.
HTML_ONLY_PAGES = {
    "genindex": "Index",
    "modindex": "Module Index",
    "py-modindex": "Module Index",
    "search": "Search",
}


def is_book(app: Sphinx) -> bool:
    return app.builder.name in BOOK_BUILDERS


def on_the_web(app: Sphinx) -> bool:
    """Whether this build is a website (an EPUB is HTML too, but offline)."""
    return app.builder.format == "html" and app.builder.name != "epub"


def web_only(app: Sphinx, docname: str) -> bool:
    """Whether *docname* belongs to the website only."""
    patterns = essays_config.from_sphinx(app.config).web_only
    return any(fnmatch.fnmatchcase(docname, pattern) for pattern in patterns)


# -- Which documents the book holds --------------------------------------------


def _add_tag(app: Sphinx) -> None:
    app.tags.add("book" if is_book(app) else "web")


def _leave_out_web_pages(app: Sphinx, doctree: nodes.document) -> None:
    """Drop web-only documents and generated pages from the book's toctrees.

    Runs before Sphinx's own toctree collector (priority 100), so the
    environment never records them as part of the book."""
    if not is_book(app):
        return
    for toctree in doctree.findall(addnodes.toctree):
        keep = [
            (title, ref)
            for title, ref in toctree["entries"]
            if ref not in HTML_ONLY_PAGES and not web_only(app, ref)
        ]
        toctree["entries"] = keep
        kept = {ref for _, ref in keep}
        toctree["includefiles"] = [
            ref for ref in toctree["includefiles"] if ref in kept
        ]


def _web_pages_are_orphans(app: Sphinx, doctree: nodes.document) -> None:
    """A web-only document is in no toctree of the book, on purpose."""
    docname = app.env.current_document.docname
    if is_book(app) and web_only(app, docname):
        app.env.metadata[docname]["orphan"] = True


def _exclude_from_epub(app: Sphinx, config: Config) -> None:
    """The EPUB package leaves out the web-only documents' pages (its builder
    writes every document, in the toctree or not)."""
    patterns = essays_config.from_sphinx(config).web_only
    if not patterns:
        return
    source = Path(app.srcdir)
    # Extensions' suffixes (MyST's .md) are merged into the setting only later.
    suffixes = (*config.source_suffix, *app.registry.source_suffix)
    pages = []
    for path in sorted(source.rglob("*")):
        if not path.name.endswith(suffixes) or "_build" in path.parts:
            continue
        docname = path.relative_to(source).as_posix().rsplit(".", 1)[0]
        if any(fnmatch.fnmatchcase(docname, pattern) for pattern in patterns):
            pages.append(docname + ".xhtml")
    config.epub_exclude_files = [*config.epub_exclude_files, *pages]


# -- The PDF's front matter -------------------------------------------------------


def _tex(text: str) -> str:
    """*text* escaped for LaTeX (the few characters our titles can hold)."""
    for char, escaped in (
        ("\\", r"\textbackslash{}"),
        ("&", r"\&"),
        ("%", r"\%"),
        ("$", r"\$"),
        ("#", r"\#"),
        ("_", r"\_"),
        ("{", r"\{"),
        ("}", r"\}"),
        ("~", r"\textasciitilde{}"),
        ("^", r"\textasciicircum{}"),
    ):
        text = text.replace(char, escaped)
    return text


def title_page(config: Config) -> str:
    """The title page, and the copyright page on its back."""
    essays = essays_config.from_sphinx(config)
    title, author = _tex(config.project), _tex(config.author)
    subtitle = _tex(essays.book_subtitle)
    edition = _tex(essays.book_edition)
    if essays.licence:
        name, short, deed = LICENCES[essays.licence]
        licence = (
            rf"The essays are published under the {_tex(name)} licence "
            rf"({_tex(short)}): you may share and adapt them for any "
            r"purpose, provided you credit the authors, link to the licence "
            r"and say what you changed. The full terms are at "
            rf"\url{{{deed}}}."
        )
    else:
        licence = ""
    copyright_line = _tex(config.copyright)
    return rf"""
\begin{{titlepage}}
  \thispagestyle{{empty}}
  \centering
  \vspace*{{0.25\textheight}}
  {{\essaysheadingfont\Huge {title}\par}}
  \vspace{{1.5em}}
  {{\essaysheadingfont\Large {subtitle}\par}}
  \vfill
  {{\large {author}\par}}
  \vspace{{1em}}
  {{\large {edition}\par}}
\end{{titlepage}}
\thispagestyle{{empty}}
\vspace*{{\fill}}
\begin{{flushleft}}\small
\textbf{{{title}}}\\ {subtitle}\\[1em]
{edition}\\[1em]
Copyright \textcopyright{{}} {copyright_line}.\\[1em]
{licence}\\[1em]
Every claim a reader may want to check carries a citation to its source;
the Bibliography lists each one with the day it was last checked.
\end{{flushleft}}
\clearpage
\pagenumbering{{roman}}
"""


#: Running heads: the chapter on the left of each page, the page number on
#: the right; no "Release". Heads need 14 pt at 11 pt type (fancyhdr's own
#: warning asks for 13.6 pt). A chapter title too long for the head is cut
#: with an ellipsis short of the page number rather than run into it.
PAGE_STYLE = r"""
\usepackage[fit]{truncate}
\setlength{\headheight}{14pt}
\addtolength{\topmargin}{-2pt}
\makeatletter
\newcommand{\essaysheadingfont}{\py@HeaderFamily}
\fancypagestyle{normal}{%
  \fancyhf{}%
  \fancyhead[L]{{\py@HeaderFamily\truncate{\dimexpr\headwidth-4em\relax}{\nouppercase{\leftmark}}}}%
  \fancyhead[R]{{\py@HeaderFamily\thepage}}%
  \renewcommand{\headrulewidth}{0.4pt}%
  \renewcommand{\footrulewidth}{0pt}%
}
\fancypagestyle{plain}{%
  \fancyhf{}%
  \fancyfoot[C]{{\py@HeaderFamily\thepage}}%
  \renewcommand{\headrulewidth}{0pt}%
  \renewcommand{\footrulewidth}{0pt}%
}
% The bibliography is a list inside the Bibliography chapter, which has its
% own heading (report's thebibliography would open a second chapter).
\renewenvironment{sphinxthebibliography}[1]{%
  \list{\@biblabel{\@arabic\c@enumiv}}{%
    \settowidth\labelwidth{\@biblabel{#1}}%
    \leftmargin\labelwidth\advance\leftmargin\labelsep
    \@openbib@code\usecounter{enumiv}\let\p@enumiv\@empty
    \renewcommand\theenumiv{\@arabic\c@enumiv}}%
  \sloppy\clubpenalty4000\@clubpenalty\clubpenalty\widowpenalty4000%
  \sfcode`\.\@m}
  {\def\@noitemerr{\@latex@warning{Empty `thebibliography' environment}}%
  \endlist}
% The indexes at the back run on, each under its own heading, in two
% columns, so that none ends on a page of its own with two lines on it.
\renewenvironment{sphinxtheindex}{%
  \par\bigskip\needspace{6\baselineskip}\phantomsection
  \addcontentsline{toc}{chapter}{\indexname}%
  \markboth{\indexname}{\indexname}%
  {\py@HeaderFamily\LARGE\bfseries\indexname\par}\nobreak\medskip
  \begin{multicols}{2}\small
  \parindent\z@\parskip\z@ \@plus .3\p@\relax
  \let\item\@idxitem}
  {\end{multicols}}
% After the glossary, the back matter runs on too: each chapter opens under
% its heading where the last one ended, so none ends on a page of its own
% with two lines on it.
\newcommand{\essaysrunonchapter}[1]{%
  \par\bigskip\needspace{6\baselineskip}%
  {\py@HeaderFamily\LARGE\bfseries #1\par}\nobreak\medskip}
% Index entries are essay and source titles, not code.
\renewcommand{\sphinxstyleindexentry}[1]{#1}
% The contents, where the root document puts them (after the preface).
\newcommand{\essaysbookcontents}{%
  \begingroup\parskip\z@skip\sphinxtableofcontentshook\tableofcontents\endgroup
  \clearpage\pagenumbering{arabic}%
}
% An essay's related essays close its chapter as one block, so a chapter
% never ends on a page holding only the last line or two of that list.
\newenvironment{sphinxclassessay-related}{\needspace{12\baselineskip}}{}
% A diagram and its caption fit on one page, so none leaves a page blank.
\AtBeginDocument{\spx@image@maxheight=.8\textheight}
\makeatother
"""


class BookTranslator(LaTeXTranslator):
    """Sphinx's LaTeX writer, with the book's back matter as chapters.

    With ``latex_toplevel_sectioning = "part"`` every document of the root
    toctree opens a part. Only the topics should: the glossary and the other
    back matter open chapters, set at the root of the PDF's outline. The
    generated indexes print their second-level entries (the essays citing a
    source) indented under the first, one line per essay with all its pages.
    """

    _back_matter_started = False
    #: How many back matter chapters have opened: the first opens a page.
    _back_matter_chapters = 0

    def visit_section(self, node: Element) -> None:
        super().visit_section(node)
        # A document's top section: inlining keeps its parent, the document.
        if (
            self.sectionlevel == self.top_sectionlevel == 0
            and isinstance(node.parent, nodes.document)
            and node.get("docname", self.config.root_doc) not in self._topic_pages()
            and node.get("docname") is not None
        ):
            self.sectionlevel += 1
            node["essays_back_matter"] = True
            if not self._back_matter_started:
                self.body.append(r"\bookmarksetup{startatroot}" + CR)
                self._back_matter_started = True

    def visit_title(self, node: Element) -> None:
        super().visit_title(node)
        if node.parent.get("essays_back_matter"):
            # Back matter is not numbered: \chapter*, listed in the contents;
            # after the first, it runs on (\essaysrunonchapter).
            self._back_matter_chapters += 1
            opening = (
                r"\chapter*{"
                if self._back_matter_chapters == 1
                else r"\essaysrunonchapter{"
            )
            self.body[-1] = self.body[-1].replace(r"\chapter{", opening, 1)
            name = self.encode(node.astext())
            self.context[-1] = (
                rf"}}\phantomsection\addcontentsline{{toc}}{{chapter}}{{{name}}}"
                + self.context[-1][1:]
            )

    def depart_title(self, node: Element) -> None:
        super().depart_title(node)
        parent = node.parent
        if isinstance(parent, nodes.section) and (
            self.sectionlevel == 0 or parent.get("essays_back_matter")
        ):
            # Running heads name the part (over its introduction) or the
            # unnumbered chapter, not the last numbered chapter before it.
            name = self.encode(node.astext())
            self.body.append(rf"\markboth{{{name}}}{{{name}}}" + CR)

    def depart_section(self, node: Element) -> None:
        super().depart_section(node)
        if node.get("essays_back_matter"):
            self.sectionlevel -= 1

    def _topic_pages(self) -> frozenset[str]:
        essays = essays_config.from_sphinx(self.config)
        return frozenset(f"{essays.root}/{topic}/index" for topic in essays.topics)

    def generate_indices(self) -> str:
        out: list[str] = []
        config = self.config.latex_domain_indices
        if not config:
            return ""
        wanted = None if isinstance(config, bool) else frozenset(config)
        for domain in self._domains.sorted():
            for index_cls in domain.indices:
                name = f"{domain.name}-{index_cls.name}"
                if wanted is not None and name not in wanted:
                    continue
                content, _collapsed = index_cls(domain).generate(self.builder.docnames)
                if content:
                    if not out:
                        out.append(r"\clearpage" + CR)
                    out.append(rf"\renewcommand{{\indexname}}{{{index_cls.localname}}}")
                    out.append(CR + self._index(content))
        return "".join(out)

    def _index(self, content: list[tuple[str, list[Any]]]) -> str:
        lines = [
            r"\begin{sphinxtheindex}",
            r"\let\bigletter\sphinxstyleindexlettergroup",
        ]
        for number, (letter, entries) in enumerate(content):
            if number:
                lines.append(r"\indexspace")
            lines.append(rf"\bigletter{{{self.escape(letter)}}}")
            previous: tuple[int, str] | None = None
            for entry in entries:
                name, subtype, docname, anchor, extra = entry[:5]
                if not anchor:
                    continue
                page = rf"\sphinxstyleindexpageref{{{docname}:{self.idescape(anchor)}}}"
                if previous == (subtype, name):
                    lines[-1] += page  # the same essay again: one more page
                    continue
                previous = (subtype, name)
                item = r"\subitem" if subtype == 2 else r"\item"
                text = rf"{item}\relax\sphinxstyleindexentry{{{self.encode(name)}}}"
                if extra:
                    text += rf"\sphinxstyleindexextra{{{self.encode(extra)}}}"
                lines.append(text + page)
        lines.append(r"\end{sphinxtheindex}")
        return CR.join(lines) + CR


def _latex_elements(app: Sphinx, config: Config) -> None:
    """Fill in the book's LaTeX settings that ``conf.py`` leaves unset."""
    essays = essays_config.from_sphinx(config)
    keywords = ", ".join(essays.topics)
    subject = essays.book_subtitle or config.project
    elements = dict(config.latex_elements)
    elements.setdefault("extraclassoptions", "openany,oneside")
    # Code at 9 pt (footnotesize of the 11 pt body) holds about 84 characters
    # to the line, as printed programming books set it; at Sphinx's default
    # (small) a line wraps past 76, and half the essays' long lines with it.
    elements.setdefault("fvset", r"\fvset{fontsize=\footnotesize}")
    elements.setdefault("maketitle", title_page(config))
    elements.setdefault("tableofcontents", "")
    elements.setdefault(
        "hyperref",
        r"\usepackage{hyperref}"
        "\n"
        rf"\hypersetup{{pdftitle={{{_tex(config.project)}}}, "
        rf"pdfauthor={{{_tex(config.author)}}}, pdfsubject={{{_tex(subject)}}}, "
        rf"pdfkeywords={{{_tex(keywords)}}}, bookmarksnumbered=false, "
        r"bookmarksopen=true, bookmarksopenlevel=0}"
        "\n"
        r"\usepackage{hypcap}"
        "\n"
        r"\usepackage{bookmark}",
    )
    elements["preamble"] = elements.get("preamble", "") + PAGE_STYLE
    config.latex_elements = elements


# -- The EPUB's cover ------------------------------------------------------------

#: The cover image, in the EPUB's ``_static`` folder.
COVER = "_static/essays-cover.png"
#: 1600 by 2560 pixels, the size EPUB readers and stores ask for.
COVER_CANVAS = drawing.Canvas(1600, 2560, paper=(21, 61, 46), ink=(251, 250, 247))


def draw_cover(config: Config) -> bytes:
    """The cover: title, subtitle, the topics, the authors and the edition."""
    essays = essays_config.from_sphinx(config)
    image, draw = COVER_CANVAS.new()
    margin, width = 150, COVER_CANVAS.width - 300
    draw.rectangle((margin, 360, margin + 220, 376), fill=255)
    y = drawing.text_block(
        draw,
        drawing.wrap(config.project, 150, width, 3),
        x=margin,
        y=440,
        size=150,
        leading=170,
        level=255,
    )
    if essays.book_subtitle:
        y = drawing.text_block(
            draw,
            drawing.wrap(essays.book_subtitle, 64, width, 4),
            x=margin,
            y=y + 60,
            size=64,
            leading=84,
            level=215,
        )
    drawing.text_block(
        draw,
        [" · ".join(topic.capitalize() for topic in essays.topics)],
        x=margin,
        y=y + 120,
        size=48,
        leading=60,
        level=190,
    )
    footer = [config.author]
    if essays.book_edition:
        footer.append(essays.book_edition)
    drawing.text_block(
        draw,
        footer,
        x=margin,
        y=COVER_CANVAS.height - 150 - 70 * len(footer),
        size=52,
        leading=70,
        level=235,
    )
    return COVER_CANVAS.png(image)


def _epub_settings(app: Sphinx, config: Config) -> None:
    """The cover and the description, unless ``conf.py`` sets its own."""
    if not config.epub_cover:
        config.epub_cover = (COVER, "epub-cover.html")
    if config.epub_description == "unknown":
        essays = essays_config.from_sphinx(config)
        config.epub_description = essays.book_subtitle or config.project


def _write_cover(app: Sphinx) -> None:
    """Draw the cover into the EPUB's tree before the builder packs it."""
    if app.builder.name != "epub" or app.config.epub_cover[0] != COVER:
        return
    path = Path(app.builder.outdir, COVER)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(draw_cover(app.config))


#: Tables with at least this many body rows break across PDF pages.
LONG_TABLE_ROWS = 12
#: So do tables whose text would fill more lines than this (a page holds
#: about 50): eleven rows of long sentences are taller than a page.
LONG_TABLE_LINES = 30
#: Characters on one line of the book's text block, in body type.
LINE_CHARACTERS = 95


def estimated_lines(table: nodes.table) -> float:
    """About how many lines of the page *table* fills: each body row as tall
    as its longest cell wrapped to its column's share of the line (by the
    table's column widths), plus half a line between rows."""
    widths = [float(spec.get("colwidth", 1)) for spec in table.findall(nodes.colspec)]
    total = sum(widths) or 1.0
    lines = 0.0
    for body in table.findall(nodes.tbody):
        for row in body.children:
            cells = [entry.astext() for entry in row.children]
            tallest = 1
            for column, text in enumerate(cells):
                share = widths[column] / total if column < len(widths) else 1.0
                per_line = max(8, int(LINE_CHARACTERS * share) - 3)
                tallest = max(tallest, -(-len(" ".join(text.split())) // per_line))
            lines += tallest + 0.5
    return lines


def _long_tables_break(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Sphinx sets a table of fewer than 30 rows as one unbreakable block
    (``tabulary``), so a 25-row table that does not fit moves to the next
    page whole and leaves the rest of this one blank, and a table taller
    than a page runs off its bottom. In the book, a table of
    :data:`LONG_TABLE_ROWS` rows or more, or of fewer rows that would fill
    :data:`LONG_TABLE_LINES` lines (:func:`estimated_lines`), is a
    ``longtable``, which breaks across pages and repeats its header."""
    if app.builder.format != "latex":
        return
    for table in doctree.findall(nodes.table):
        if "longtable" in table["classes"]:
            continue
        rows = sum(len(body.children) for body in table.findall(nodes.tbody))
        if rows >= LONG_TABLE_ROWS or (
            rows >= 2 and estimated_lines(table) >= LONG_TABLE_LINES
        ):
            table["classes"].append("longtable")


def setup(app: Sphinx) -> None:
    app.set_translator("latex", BookTranslator, override=True)
    app.connect("doctree-resolved", _long_tables_break)
    app.connect("config-inited", _exclude_from_epub)
    app.connect("config-inited", _latex_elements)
    app.connect("config-inited", _epub_settings)
    app.connect("builder-inited", _write_cover)
    app.connect("builder-inited", _add_tag)
    app.connect("doctree-read", _leave_out_web_pages, priority=100)
    app.connect("doctree-read", _web_pages_are_orphans, priority=900)
