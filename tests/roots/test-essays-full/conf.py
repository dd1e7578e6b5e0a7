# The real site's extensions and the settings that shape their output
# (docs/conf.py), on a small corpus: the exactness tests build it again and
# again.
extensions = [
    "myst_parser",
    "sphinx_design",
    "sphinx.ext.graphviz",
    "sphinxcontrib.bibtex",
    "sphinx_essays",
    "sphinx_copybutton",
    "sphinx_last_updated_by_git",
    "sphinx_sitemap",
    "sphinxext.opengraph",
    "notfound.extension",
]
project = "Test Essays"
author = "Test Author"
copyright = "2026, Test Author"
version = release = "2026"
smartquotes = False
nitpicky = True
html_theme = "furo"
html_baseurl = "https://essays.example.org/"
html_copy_source = False
html_show_sourcelink = False
html_last_updated_fmt = "%Y-%m-%d"
suppress_warnings = ["git.too_shallow"]
essays_topics = ("observability", "security")
graphviz_output_format = "svg"
bibtex_bibfiles = ["references.bib"]
bibtex_default_style = "essays"
bibtex_reference_style = "essays"
bibtex_tooltips = False
sitemap_url_scheme = "{link}"
sitemap_excludes = ["search.html", "genindex.html", "404.html"]
ogp_site_url = html_baseurl
ogp_site_name = project
ogp_type = "article"
ogp_enable_meta_description = True
ogp_social_cards = {"enable": False}
