"""``{name:text}``: a path parameter that is any text, slashes and line breaks included.

Task ids, worker names, queue names and schedule entries come from the applications that name them,
and Celery takes any string. Starlette's ``path`` stops at a line break (its ``.*`` has no DOTALL), so
a task whose id holds one was stored and listed but its page and ``/api/task/info`` answered 404.
Importing this module registers the convertor; the route tables import it before building routes.
"""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor


class TextConvertor(Convertor[str]):
    regex = "(?s:.+)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return str(value)


register_url_convertor("text", TextConvertor())
