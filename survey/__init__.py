"""The paper's subjective study: "Do you believe this image is from a colour film?"

Three steps, one module each: `plan` makes a survey folder (frames picked from a test
split, colorized by each model, plus the real colour frames and optional controls, all in
one SQLite database), `app` serves it to raters in a browser (Flask, under waitress),
`report` turns the answers into the paper's numbers (share of "yes" per condition with
bootstrap intervals, pairwise tests, the Fig. 8 box plot). `store` owns the database.

`survey` imports `colorizer` and `manifests`; neither imports it.
"""
