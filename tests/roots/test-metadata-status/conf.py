extensions = ["myst_parser", "sphinx_essays"]
smartquotes = False
nitpicky = True
html_baseurl = "https://essays.example.org/"
