extensions = ["myst_parser", "sphinx_essays"]
project = "Test Sources"
author = "Test Author"
smartquotes = False
nitpicky = True
html_baseurl = "https://essays.example.org/"
bibtex_bibfiles = ["references.bib"]
bibtex_default_style = "essays"
bibtex_reference_style = "essays"
# Our previews show the full reference; the library's title tooltips would
# repeat it.
bibtex_tooltips = False
# As on the real site: no "view source" button.
html_copy_source = False
html_show_sourcelink = False
