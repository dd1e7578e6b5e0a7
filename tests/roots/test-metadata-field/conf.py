extensions = ["myst_parser", "sphinx_essays"]
smartquotes = False
nitpicky = True
