"""Service requests and their approvals, as pure domain code.

`catalogue`: the admin's service catalogue (categories, form fields, prices, fulfilment teams) and
the check of a submitted form. `policy`: approval policies and the planning of a request's stages.
`state`: the per-item approval state machine. `models`: the request's plain data. `errors`: what
these modules raise. `files`: reading the admin's YAML files.
"""
