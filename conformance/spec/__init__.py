"""The spec registry: clauses parsed from ``specs/*.md`` (``registry``), and known failures (``expectations``)."""
