"""Where builds come from, each source turning what it reads into :class:`~elastic_recheck.builds.Build`.

One module a source: ``gerrit`` (the CI reports in Gerrit's event stream)
and ``zuul`` (Zuul's builds API, polled). Nothing past a source's edge reads
raw Gerrit JSON or Zuul records; a new source (a GitHub or GitLab webhook)
is a new module here.
"""
