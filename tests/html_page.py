"""The HTML report as a reader sees it: a small DOM from the standard library's parser, for the tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from pytest_faef.results.html_report import render_html

VOID_TAGS = {"meta", "col", "br", "hr", "img", "input", "link", "area", "base", "source", "wbr"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element | str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(child if isinstance(child, str) else child.text for child in self.children)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def walk(self) -> Iterator[Element]:
        for child in self.children:
            if isinstance(child, Element):
                yield child
                yield from child.walk()

    def all(self, tag: str, css_class: str | None = None, **attrs: str) -> list[Element]:
        """Descendants by tag, class and attributes (``data_model`` matches ``data-model``)."""
        wanted = {name.replace("_", "-"): value for name, value in attrs.items()}
        return [
            element
            for element in self.walk()
            if element.tag == tag
            and (css_class is None or css_class in element.classes)
            and all(element.attrs.get(name) == value for name, value in wanted.items())
        ]

    def one(self, tag: str, css_class: str | None = None, **attrs: str) -> Element:
        found = self.all(tag, css_class, **attrs)
        assert len(found) == 1, f"expected one <{tag}> {css_class or ''} {attrs}, found {len(found)}"
        return found[0]


class PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]
        self.start_tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.start_tags.append(tag)
        element = Element(tag, {name: value or "" for name, value in attrs})
        self.stack[-1].children.append(element)
        if tag not in VOID_TAGS:
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(page: str) -> tuple[Element, list[str]]:
    parser = PageParser()
    parser.feed(page)
    parser.close()
    return parser.root, parser.start_tags


def page_of(data: dict[str, Any]) -> Element:
    return parse(render_html(data))[0]
