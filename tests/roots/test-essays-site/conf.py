extensions = ["myst_parser", "sphinx_design", "sphinx_essays"]
project = "Test Essays"
author = "Test Author"
smartquotes = False
nitpicky = True
html_baseurl = "https://essays.example.org/"
essays_topics = ("observability", "security")
graphviz_output_format = "svg"
