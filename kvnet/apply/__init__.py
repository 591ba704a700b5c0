"""`kvnet apply -f cloud.yaml`: the desired cloud from a file, a plan of steps, and their execution.

`spec` reads the file and translates names into API bodies, `plan` is the pure diff (current
resources + desired file -> steps), `execute` runs the steps against the API in dependency order.
"""
