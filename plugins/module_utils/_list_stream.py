# -*- coding: utf-8 -*-
# Copyright: (c) 2026, virtfleet maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Decode a Kubernetes list response item by item while it arrives.

``json.loads`` of a list page needs the whole body in memory, then builds every object of the page at once:
for 5,000 VirtualMachineInstances as a real API server sends them (status, spec, managedFields: about 4 KB of
JSON each) that is 20 MB of text and several times that in Python objects, when a caller such as the inventory
keeps a tenth of each object. ``ListDecoder`` reads the body in chunks and hands each element of the top-level
``items`` array to a function as soon as it is complete (``json.JSONDecoder.raw_decode``, the C scanner), so only
what that function returns is kept; the other top-level keys (``metadata`` with ``continue``, ``kind``, ...) are
decoded whole. The result is the same as ``json.loads`` followed by ``[fn(item) for item in doc['items']]``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import codecs
import json

CHUNK = 256 * 1024
_WHITESPACE = ' \t\n\r'
_DECODER = json.JSONDecoder()


class ListDecodeError(ValueError):
    """The body is not a JSON object (the caller reports it as 'not JSON')."""


class ListDecoder(object):
    """``ListDecoder(chunks, fn).decode()`` -> (document without ``items``, ``[fn(item), ...]``).

    ``chunks`` is an iterable of bytes (a response's ``stream()``); ``fn`` maps one decoded item to what is kept.
    """

    def __init__(self, chunks, fn):
        self._chunks = iter(chunks)
        self._text = codecs.getincrementaldecoder('utf-8')()
        self._fn = fn
        self._buf = ''
        self._pos = 0
        self._eof = False

    # --- buffer ---------------------------------------------------------------------------------------------
    def _more(self):
        """Append the next chunk; False at the end of the body."""
        if self._eof:
            return False
        for chunk in self._chunks:
            if chunk:
                self._buf = self._buf[self._pos:] + self._text.decode(chunk)
                self._pos = 0
                return True
        self._buf = self._buf[self._pos:] + self._text.decode(b'', final=True)
        self._pos = 0
        self._eof = True
        return False

    def _peek(self):
        """The next character that is not whitespace (the position stays on it), '' at the end of the body."""
        while True:
            buf, pos = self._buf, self._pos
            while pos < len(buf) and buf[pos] in _WHITESPACE:
                pos += 1
            self._pos = pos
            if pos < len(buf):
                return buf[pos]
            if not self._more():
                return ''

    def _expect(self, chars):
        char = self._peek()
        if not char or char not in chars:
            expected = ' or '.join(repr(c) for c in chars)
            raise ListDecodeError('expected %s at offset %d, found %r' % (expected, self._pos, char or 'the end'))
        self._pos += 1
        return char

    def _value(self):
        """Decode one complete JSON value at the position, reading more of the body until it is complete."""
        self._peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self._buf, self._pos)
            except ValueError as exc:
                # Incomplete so far, or invalid: only the end of the body tells them apart.
                if self._more():
                    continue
                raise ListDecodeError(str(exc))
            if end == len(self._buf) and not self._eof and self._more():
                # A number at the very end of the buffer may go on in the next chunk: decode it again.
                continue
            self._pos = end
            return value

    # --- document -------------------------------------------------------------------------------------------
    def decode(self):
        doc, items = {}, None
        self._expect('{')
        if self._peek() == '}':
            self._pos += 1
        else:
            while True:
                key = self._value()
                if not isinstance(key, str):
                    raise ListDecodeError('object key is not a string')
                self._expect(':')
                if key == 'items' and self._peek() == '[':
                    items = self._items()
                else:
                    doc[key] = self._value()
                if self._expect(',}') == '}':
                    break
        if self._peek():
            raise ListDecodeError('extra data after the list at offset %d' % self._pos)
        return doc, items if items is not None else [self._fn(item) for item in doc.pop('items', None) or ()]

    def _items(self):
        self._expect('[')
        out = []
        if self._peek() == ']':
            self._pos += 1
            return out
        fn = self._fn
        while True:
            out.append(fn(self._value()))
            if self._expect(',]') == ']':
                return out


def decode_list(chunks, fn):
    """(document without ``items``, ``[fn(item), ...]``) of a list body given as an iterable of byte chunks."""
    return ListDecoder(chunks, fn).decode()
