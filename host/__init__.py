"""hilnas host: the search engine (data, spaces, training, export, fleet, search, reports)."""
