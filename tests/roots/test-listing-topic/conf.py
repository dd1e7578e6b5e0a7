extensions = ["myst_parser", "sphinx_essays"]
nitpicky = True
html_baseurl = "https://essays.example.org/"
