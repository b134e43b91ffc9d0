"""wire.js against docs/PROTOCOL.md §10, in Chromium.

The vectors are read from the document itself: each "#### Vector: name" has a one-line
description in the document's notation, `Hello(version: 1, role: .viewer, ...)`, which
this file parses into the fields wire.js uses, and a `hex` block with the whole frame.
For every valid vector wire.js must decode the frame to those fields and encode the
fields to exactly those bytes; every "#### Invalid: name (kind)" must fail with a
WireError of that kind. FrameReader is also fed the vectors' byte stream cut at every
offset.
"""

import pathlib
import re

import pytest

PROTOCOL = pathlib.Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md"

# ---------------------------------------------------------------------------------------
# Reading the document

MESSAGE_TYPES = {
    "Hello": 0x01, "HelloAck": 0x02, "HostAuth": 0x03, "ViewerAuth": 0x04, "CodeIssued": 0x05,
    "HostRegistered": 0x06, "Paired": 0x07, "Ping": 0x08, "Pong": 0x09, "Bye": 0x0A, "Error": 0x0B,
    "ScreenInit": 0x40, "TileUpdate": 0x41, "UpdateRequest": 0x42, "Pointer": 0x43, "Key": 0x44,
    "Clipboard": 0x45, "AccessGranted": 0x46, "KeyCommit": 0x47, "KeyShare": 0x48, "Sealed": 0x49,
}

WIRE_ERROR_KINDS = {
    "truncated frame", "frame too large", "unknown message type", "truncated message", "trailing bytes",
    "invalid UTF-8", "invalid field", "field too long",
}


def document_text():
    return PROTOCOL.read_text(encoding="utf-8")


def section(text, start, end):
    """The text between the heading line `start` and the heading line `end` (both exact)."""
    begin = text.index(f"\n{start}\n")
    finish = text.index(f"\n{end}\n", begin) if end else len(text)
    return text[begin:finish]


def parse_hex_block(block, where):
    """§10: lowercase two-digit hex separated by single spaces, 16 bytes per line."""
    lines = block.split("\n")
    for number, line in enumerate(lines):
        assert re.fullmatch(r"[0-9a-f]{2}( [0-9a-f]{2}){0,15}", line), f"{where}: hex line {line!r} is malformed"
        if number < len(lines) - 1:
            assert len(line.split(" ")) == 16, f"{where}: hex line {number + 1} does not hold 16 bytes"
    return bytes.fromhex(block.replace("\n", " "))


VECTOR_PATTERN = re.compile(
    r"^#### (Vector|Invalid): ([^\n]+)\n([^\n]+)\n\n```hex\n(.*?)\n```\n", re.MULTILINE | re.DOTALL
)


def wire_vectors(text):
    """The valid (§10.1, §10.2) and invalid (§10.3) vectors, in document order."""
    body = section(text, "## 10. Test vectors", "### 10.4 End-to-end handshake")
    valid, invalid = [], []
    for match in VECTOR_PATTERN.finditer(body):
        heading, title, description, block = match.groups()
        data = parse_hex_block(block, title)
        if heading == "Vector":
            valid.append({"name": title, "description": description, "bytes": data})
        else:
            named = re.fullmatch(r"(\S+) \(([^)]+)\)", title)
            assert named, f"invalid vector heading {title!r} is not 'name (kind)'"
            invalid.append({"name": named[1], "kind": named[2], "description": description, "bytes": data})
    # Counted again with the simplest pattern, so that a vector the pattern above missed
    # (a changed shape) fails the test instead of silently dropping out.
    assert len(valid) == len(re.findall(r"^#### Vector: ", body, re.MULTILINE))
    assert len(invalid) == len(re.findall(r"^#### Invalid: ", body, re.MULTILINE))
    return valid, invalid


def tile_bodies(text):
    """§7.8's "Body N" blocks by (vector name, N), for the §10.2 vector that carries one."""
    bodies = {}
    for match in re.finditer(r"^#### Tile vector: (\S+)\n(.*?)(?=^#### |^### )", text, re.MULTILINE | re.DOTALL):
        name, content = match.groups()
        for body in re.finditer(r"^Body (\d+):\n\n```hex\n(.*?)\n```", content, re.MULTILINE | re.DOTALL):
            bodies[(name, int(body[1]))] = parse_hex_block(body[2], f"tile vector {name} body {body[1]}")
    return bodies


# ---------------------------------------------------------------------------------------
# The document's notation: `Name.variant(label: value, ...)`, `.case`, `[.a, .b]`,
# "strings" with \u{...} escapes, numbers (a parenthesised remark may follow one), hex.

class Call:
    def __init__(self, path, args):
        self.path = path  # ("HostAuth", "supportCode"), (".connect",), ...
        self.args = args  # [(label or None, value)]

    def labelled(self):
        return {label: value for label, value in self.args if label}

    def positional(self):
        return [value for label, value in self.args if not label]


class Case:
    def __init__(self, name, call=None):
        self.name = name
        self.call = call


class Word(str):
    """A number, code, hex string or true/false, as written."""


class TileBodyReference:
    def __init__(self, name, number, count):
        self.name, self.number, self.count = name, number, count


class NotationParser:
    def __init__(self, text):
        self.text = text
        self.position = 0

    def fail(self, what):
        raise AssertionError(f"cannot read the vector description at {self.position} ({what}): {self.text!r}")

    def skip_space(self):
        while self.position < len(self.text) and self.text[self.position] == " ":
            self.position += 1

    def peek(self):
        self.skip_space()
        return self.text[self.position] if self.position < len(self.text) else ""

    def expect(self, character):
        if self.peek() != character:
            self.fail(f"expected {character!r}")
        self.position += 1

    def match(self, pattern):
        self.skip_space()
        found = re.compile(pattern).match(self.text, self.position)
        if found:
            self.position = found.end()
        return found

    def word(self):
        found = self.match(r"[A-Za-z0-9_]+")
        if not found:
            self.fail("expected a word")
        return found[0]

    def message(self):
        """The message at the start of the description; what follows it is prose."""
        value = self.value()
        if not isinstance(value, Call):
            self.fail("the description does not start with a message")
        return value

    def value(self):
        character = self.peek()
        reference = self.match(r'the (\d+) bytes of Body (\d+) of Tile vector "([^"]+)", §7\.8')
        if reference:
            return TileBodyReference(reference[3], int(reference[2]), int(reference[1]))
        if character == '"':
            return self.string()
        if character == "[":
            self.expect("[")
            items = []
            while self.peek() != "]":
                items.append(self.value())
                if self.peek() == ",":
                    self.expect(",")
            self.expect("]")
            return items
        if character == ".":
            self.expect(".")
            name = self.word()
            return Case(name, self.arguments(("." + name,)) if self.peek() == "(" else None)
        word = self.word()
        if word[0].isupper():
            path = [word]
            while self.peek() == ".":
                self.expect(".")
                path.append(self.word())
            return self.arguments(tuple(path))
        self.skip_remark()
        return Word(word)

    def arguments(self, path):
        self.expect("(")
        args = []
        while self.peek() != ")":
            label = self.match(r"([A-Za-z_][A-Za-z0-9_]*)\s*:(?!:)")
            args.append((label[1] if label else None, self.value()))
            if self.peek() == ",":
                self.expect(",")
            elif self.peek() != ")":
                self.fail("expected ',' or ')'")
        self.expect(")")
        return Call(path, args)

    def skip_remark(self):
        """`0xff0d (Return)`: a parenthesised remark after a number is prose."""
        if self.peek() != "(":
            return
        depth = 0
        while self.position < len(self.text):
            character = self.text[self.position]
            self.position += 1
            depth += {"(": 1, ")": -1}.get(character, 0)
            if depth == 0:
                return
        self.fail("unbalanced remark")

    def string(self):
        self.expect('"')
        result = []
        while True:
            if self.position >= len(self.text):
                self.fail("unterminated string")
            character = self.text[self.position]
            self.position += 1
            if character == '"':
                return "".join(result)
            if character != "\\":
                result.append(character)
                continue
            escape = re.compile(r'u\{([0-9A-Fa-f]{1,6})\}|(["\\])|n').match(self.text, self.position)
            if not escape:
                self.fail("unknown escape")
            self.position = escape.end()
            result.append(chr(int(escape[1], 16)) if escape[1] else escape[2] or "\n")


# ---------------------------------------------------------------------------------------
# From the notation to wire.js's fields (the names of PROTOCOL.md's tables)

OPTION_BITS = {
    "screenTiles": 0x1, "input": 0x2, "clipboard": 0x4,  # caps, §3
    "confirmSecurityCode": 0x1, "fullRefresh": 0x1, "inputAllowed": 0x1,  # flags
    "left": 0x01, "middle": 0x02, "right": 0x04, "wheelUp": 0x08, "wheelDown": 0x10,  # Pointer.buttons
}
ROLES = {"host": 1, "viewer": 2}
MODES = {"attended": 1, "unattended": 2}
PIXEL_FORMATS = {"bgrx8888": 1}
BYE_REASONS = {
    "normal": 1, "peerLeft": 2, "relayShutdown": 3, "idleTimeout": 4, "handshakeTimeout": 5, "protocolError": 6,
    "revoked": 7, "relayRestart": 8, "declined": 9,
}
ERROR_CODES = {
    "unsupportedVersion": 1, "malformedMessage": 2, "frameTooLarge": 3, "unexpectedMessage": 4,
    "authenticationFailed": 5, "invalidCode": 6, "noSuchHost": 7, "hostBusy": 8, "rateLimited": 9, "relayFull": 10,
    "timeout": 11, "internalError": 12,
}


def as_int(value):
    assert isinstance(value, Word), f"expected a number, got {value!r}"
    return int(value, 16) if value.startswith("0x") else int(value)


def as_bits(value):
    if isinstance(value, list):
        bits = 0
        for item in value:
            assert isinstance(item, Case) and item.name in OPTION_BITS, f"unknown option {item!r}"
            bits |= OPTION_BITS[item.name]
        return bits
    return as_int(value)


def as_case(value, cases):
    assert isinstance(value, Case) and value.name in cases, f"expected one of {sorted(cases)}, got {value!r}"
    return cases[value.name]


def as_code(value):
    assert isinstance(value, Word) and re.fullmatch(r"[0-9]{6}", value), f"not a support code: {value!r}"
    return str(value)


def as_bytes(value, length, bodies):
    if isinstance(value, TileBodyReference):
        data = bodies[(value.name, value.number)]
        assert len(data) == value.count, f"Body {value.number} of {value.name} is not {value.count} bytes"
        return data
    assert isinstance(value, Word) and re.fullmatch(r"(?:[0-9a-f]{2})+", value), f"not hex bytes: {value!r}"
    data = bytes.fromhex(value)
    assert length is None or len(data) == length, f"{value} is not {length} bytes"
    return data


def as_bool(value):
    assert value in ("true", "false"), f"expected true or false, got {value!r}"
    return value == "true"


def as_string(value):
    assert isinstance(value, str) and not isinstance(value, Word), f"expected a string, got {value!r}"
    return value


def blob(data):
    """Bytes as wire.js's values are compared: {"$bytes": hex}."""
    return {"$bytes": data.hex()}


def viewer_request(value, fields):
    if value.name == "newSupportCode":
        fields["request"] = 1
    else:
        assert value.name == "connect", f"unknown ViewerAuth request {value.name}"
        fields["request"] = 2
        fields["hostID"] = as_string(value.call.labelled()["hostID"])
    return fields


def expected_message(call, bodies):
    """(type byte, the fields wire.js decodes to) of a parsed description."""
    name, variant = call.path[0], call.path[1] if len(call.path) > 1 else None
    args = call.labelled()
    unused = set(args)

    def take(label, default=None):
        unused.discard(label)
        if label not in args:
            assert default is not None, f"{name}: no {label}"
            return default
        return args[label]

    if name == "Hello":
        fields = {"version": as_int(take("version", Word("1"))), "role": as_case(take("role"), ROLES),
                  "capabilities": as_bits(take("capabilities")), "software": as_string(take("software"))}
    elif name == "HelloAck":
        fields = {"version": as_int(take("version", Word("1"))), "capabilities": as_bits(take("capabilities")),
                  "maximumPayloadLength": as_int(take("maximumPayloadLength")),
                  "relayNode": as_string(take("relayNode"))}
    elif name == "HostAuth":
        positional = call.positional()
        if variant == "supportCode":
            fields = {"method": 1, "code": as_code(positional[0])}
        elif variant == "namedSupportCode":
            fields = {"method": 3, "code": as_code(positional[0]), "machineName": as_string(take("machineName"))}
        elif variant == "enrolled":
            fields = {"method": 2, "hostID": as_string(take("hostID")), "secret": as_string(take("secret"))}
        else:
            assert variant == "key", f"unknown HostAuth form {variant}"
            fields = {"method": 4, "hostID": as_string(take("hostID"))}
    elif name == "ViewerAuth":
        if variant == "key":
            fields = viewer_request(call.positional()[0], {"token": ""})
        else:
            fields = viewer_request(take("request"), {"token": as_string(take("token"))})
    elif name == "CodeIssued":
        flags = as_bits(take("flags", []))
        fields = {"code": as_code(take("code")), "validForSeconds": as_int(take("validForSeconds")), "flags": flags,
                  "confirmSecurityCode": bool(flags & 1)}
    elif name == "HostRegistered":
        fields = {"hostName": as_string(take("hostName"))}
    elif name == "Paired":
        session = as_bytes(take("sessionID"), 16, bodies)
        fields = {"sessionID": session.hex(), "sessionIDBytes": blob(session), "mode": as_case(take("mode"), MODES),
                  "peerCapabilities": as_bits(take("peerCapabilities")), "peerName": as_string(take("peerName")),
                  "peerSoftware": as_string(take("peerSoftware")),
                  "peerOrganization": as_string(take("peerOrganization", ""))}
    elif name in ("Ping", "Pong"):
        fields = {"nonce": {"$bigint": str(as_int(take("nonce")))}}
    elif name == "Bye":
        fields = {"reason": as_case(take("reason"), BYE_REASONS), "text": as_string(take("text"))}
    elif name == "Error":
        fields = {"code": as_case(take("code"), ERROR_CODES), "message": as_string(take("message"))}
    elif name == "ScreenInit":
        fields = {"width": as_int(take("width")), "height": as_int(take("height")),
                  "pixelFormat": as_case(take("pixelFormat"), PIXEL_FORMATS), "name": as_string(take("name"))}
    elif name == "TileUpdate":
        fields = {"body": blob(as_bytes(take("body"), None, bodies))}
    elif name == "UpdateRequest":
        flags = as_bits(take("flags", []))
        fields = {"requestID": as_int(take("requestID")), "flags": flags, "fullRefresh": bool(flags & 1)}
    elif name == "Pointer":
        fields = {"x": as_int(take("x")), "y": as_int(take("y")), "buttons": as_bits(take("buttons", []))}
    elif name == "Key":
        # The description says isDown (the Swift name); §5.2.5's table says down.
        fields = {"keysym": as_int(take("keysym")), "down": as_bool(take("isDown"))}
    elif name == "Clipboard":
        fields = {"text": as_string(take("text"))}
    elif name == "AccessGranted":
        flags = as_bits(take("flags"))
        fields = {"flags": flags, "inputAllowed": bool(flags & 1)}
    elif name == "KeyCommit":
        fields = {"version": as_int(take("version")), "commitment": blob(as_bytes(take("commitment"), 32, bodies))}
    elif name == "KeyShare":
        # §5.3.3's table: ephemeral and identity (the description: ephemeralKey, identityKey).
        fields = {"version": as_int(take("version")), "role": as_case(take("role"), ROLES),
                  "ephemeral": blob(as_bytes(take("ephemeralKey"), 32, bodies)),
                  "identity": blob(as_bytes(take("identityKey"), 32, bodies))}
    elif name == "Sealed":
        fields = {"body": blob(as_bytes(take("body"), None, bodies))}
    else:
        raise AssertionError(f"the description names no known message: {name}")
    assert not unused, f"{name}: fields this test does not know: {sorted(unused)}"
    return MESSAGE_TYPES[name], fields


@pytest.fixture(scope="module")
def vectors():
    text = document_text()
    valid, invalid = wire_vectors(text)
    # NodeAuth travels between relay nodes only (the cluster port, §5.1.12): a browser never
    # sends or receives it, and its wire module does not know it.
    valid = [vector for vector in valid if not vector["description"].startswith("NodeAuth(")]
    bodies = tile_bodies(text)
    for vector in valid:
        vector["type"], vector["fields"] = expected_message(NotationParser(vector["description"]).message(), bodies)
    return valid, invalid


# ---------------------------------------------------------------------------------------
# The page side: values cross as JSON, bytes as {"$bytes": hex}, BigInts as {"$bigint": "..."}

JS_HELPERS = """
const wire = await import('/js/wire.js');
const plain = (value) => {
    if (value instanceof Uint8Array) return {$bytes: wire.bytesToHex(value)};
    if (typeof value === 'bigint') return {$bigint: value.toString()};
    if (Array.isArray(value)) return value.map(plain);
    if (value && typeof value === 'object') {
        return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, plain(item)]));
    }
    return value;
};
const revive = (value) => {
    if (value && typeof value === 'object' && '$bytes' in value) return wire.hexToBytes(value.$bytes);
    if (value && typeof value === 'object' && '$bigint' in value) return BigInt(value.$bigint);
    if (value && typeof value === 'object') {
        return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, revive(item)]));
    }
    return value;
};
const failure = (error) => ({error: error.name, kind: error.kind ?? null, message: error.message});
const attempt = (body) => { try { return {value: body()}; } catch (error) { return failure(error); } };
"""


def run_js(page, body, argument=None):
    """Runs `body` (statements ending in a return) with wire.js imported as `wire`."""
    return page.evaluate(f"async (input) => {{ {JS_HELPERS}\n{body} }}", argument)


def vector_input(vector):
    return {"name": vector["name"], "hex": vector["bytes"].hex(), "type": vector.get("type"),
            "fields": vector.get("fields")}


# ---------------------------------------------------------------------------------------
# Tests

def test_document_has_the_vectors_this_test_counts(vectors):
    valid, invalid = vectors
    text = section(document_text(), "## 10. Test vectors", "### 10.4 End-to-end handshake")
    # Less the NodeAuth vectors, which are node to node (see the fixture).
    assert len(valid) == text.count("\n#### Vector: ") - text.count("\n#### Vector: node-auth-") > 0
    assert len(invalid) == text.count("\n#### Invalid: ") > 0
    # The document as of this test: 39 valid and 16 invalid vectors. More is fine (each
    # is checked); fewer means vectors went missing from the document or from the parse.
    assert len(valid) >= 39 and len(invalid) >= 16
    assert len({vector["name"] for vector in valid + invalid}) == len(valid) + len(invalid), "duplicate names"
    for vector in invalid:
        assert vector["kind"] in WIRE_ERROR_KINDS, f"{vector['name']}: unknown kind {vector['kind']!r}"
    covered = {vector["type"] for vector in valid}
    missing = sorted(name for name, number in MESSAGE_TYPES.items() if number not in covered)
    assert not missing, f"no valid vector for {missing}"
    for vector in valid:
        data = vector["bytes"]
        assert data[0] == vector["type"], f"{vector['name']}: type byte 0x{data[0]:02x} is not the described message"
        assert int.from_bytes(data[1:4], "big") == len(data) - 4, f"{vector['name']}: length field"


def test_message_types_and_codes_match_the_document(module_page):
    constants = run_js(module_page, """
        return {types: wire.MessageType, bye: wire.ByeReason, errors: wire.ErrorCode,
                kinds: Object.values(wire.WireErrorKind)};
    """)
    assert {name[0].upper() + name[1:]: number for name, number in constants["types"].items()} == MESSAGE_TYPES
    assert constants["bye"] == BYE_REASONS
    assert constants["errors"] == ERROR_CODES
    assert set(constants["kinds"]) == WIRE_ERROR_KINDS


def test_every_valid_vector_decodes_to_its_fields_and_encodes_to_its_bytes(module_page, vectors):
    valid, _ = vectors
    results = run_js(module_page, """
        return input.map((vector) => {
            const bytes = wire.hexToBytes(vector.hex);
            const reader = new wire.FrameReader();
            const read = attempt(() => { const frames = reader.push(bytes); reader.end(); return frames.length; });
            const frames = new wire.FrameReader().push(bytes);
            return {
                name: vector.name,
                frames: read.value ?? read,
                decoded: attempt(() => plain(wire.decodeMessage(frames[0].type, frames[0].payload))),
                direct: attempt(() => plain(wire.decode[Object.keys(wire.MessageType).find(
                    (key) => wire.MessageType[key] === vector.type)](frames[0].payload))),
                encoded: attempt(() => wire.bytesToHex(wire.encodeMessage(vector.type, revive(vector.fields)))),
            };
        });
    """, [vector_input(vector) for vector in valid])
    assert len(results) == len(valid)
    problems = []
    for vector, result in zip(valid, results):
        name = vector["name"]
        if result["frames"] != 1:
            problems.append(f"{name}: FrameReader read {result['frames']} instead of one whole frame")
            continue
        expected = {"type": vector["type"], "name": next(k for k, v in MESSAGE_TYPES.items() if v == vector["type"]),
                    "fields": vector["fields"]}
        if result["decoded"].get("value") != expected:
            problems.append(f"{name}: decoded {result['decoded']}, expected {expected}")
        if result["direct"].get("value") != vector["fields"]:
            problems.append(f"{name}: decode.* gave {result['direct']}")
        if result["encoded"].get("value") != vector["bytes"].hex():
            problems.append(f"{name}: encoded {result['encoded']}, expected {vector['bytes'].hex()}")
    assert not problems, "\n".join(problems)


def test_every_invalid_vector_fails_with_its_kind(module_page, vectors):
    _, invalid = vectors
    results = run_js(module_page, """
        return input.map((vector) => {
            const bytes = wire.hexToBytes(vector.hex);
            const headerOnly = attempt(() => new wire.FrameReader().push(bytes.subarray(0, 4)));
            const whole = attempt(() => {
                const reader = new wire.FrameReader();
                const frames = reader.push(bytes);
                reader.end();  // §10: the stream ends after the last byte shown
                return frames.map((frame) => plain(wire.decodeMessage(frame.type, frame.payload)));
            });
            return {headerOnly, whole};
        });
    """, [vector_input(vector) for vector in invalid])
    assert len(results) == len(invalid)
    problems = []
    for vector, result in zip(invalid, results):
        name, kind = vector["name"], vector["kind"]
        whole = result["whole"]
        if whole.get("error") != "WireError" or whole.get("kind") != kind:
            problems.append(f"{name}: expected WireError ({kind}), got {whole}")
        elif not whole["message"].strip():
            problems.append(f"{name}: the error has no message")
        if kind in ("frame too large", "unknown message type"):
            # §2.1: answered from the 4 header bytes, before any payload byte.
            if result["headerOnly"].get("kind") != kind:
                problems.append(f"{name}: the header alone gave {result['headerOnly']}, expected {kind}")
    assert not problems, "\n".join(problems)


def test_frame_reader_reads_the_vector_stream_cut_at_every_offset(module_page, vectors):
    valid, _ = vectors
    stream = b"".join(vector["bytes"] for vector in valid)
    outcome = run_js(module_page, """
        const stream = wire.hexToBytes(input.stream);
        const expected = input.frames;
        const read = (chunks) => {
            const reader = new wire.FrameReader();
            const frames = [];
            for (const chunk of chunks) {
                for (const frame of reader.push(chunk)) frames.push(frame.type + ':' + wire.bytesToHex(frame.payload));
            }
            reader.end();
            return frames;
        };
        const same = (frames) => frames.length === expected.length && frames.every((f, i) => f === expected[i]);
        const bad = [];
        for (let cut = 0; cut <= stream.length; cut++) {
            if (!same(read([stream.subarray(0, cut), stream.subarray(cut)]))) bad.push(`cut ${cut}`);
        }
        for (let first = 0; first <= stream.length; first += 7) {
            for (let second = first; second <= stream.length; second += 13) {
                const parts = [stream.subarray(0, first), stream.subarray(first, second), stream.subarray(second)];
                if (!same(read(parts))) bad.push(`cuts ${first}, ${second}`);
            }
        }
        const single = [];
        for (let index = 0; index < stream.length; index++) single.push(stream.subarray(index, index + 1));
        if (!same(read(single))) bad.push('one byte at a time');
        // Copies, so that each chunk is its own buffer, as WebSocket messages are.
        if (!same(read([stream.slice(0, 5), stream.slice(5, 900), stream.slice(900)]))) bad.push('copies');
        return {bad, checked: stream.length + 1};
    """, {"stream": stream.hex(), "frames": [f"{v['bytes'][0]}:{v['bytes'][4:].hex()}" for v in valid]})
    assert outcome["checked"] == len(stream) + 1
    assert not outcome["bad"], outcome["bad"][:20]


def test_frame_reader_reports_a_stream_that_ends_inside_a_frame(module_page, vectors):
    valid, _ = vectors
    stream = b"".join(vector["bytes"] for vector in valid)
    boundaries = [0]
    for vector in valid:
        boundaries.append(boundaries[-1] + len(vector["bytes"]))
    outcome = run_js(module_page, """
        const stream = wire.hexToBytes(input.stream);
        const boundaries = new Set(input.boundaries);
        const wrong = [];
        for (let end = 0; end <= stream.length; end++) {
            const reader = new wire.FrameReader();
            reader.push(stream.subarray(0, end));
            const result = attempt(() => reader.end());
            const expected = boundaries.has(end) ? null : 'truncated frame';
            if ((result.kind ?? null) !== expected) wrong.push(`${end}: ${JSON.stringify(result)}`);
            // A failed reader stays failed.
            if (expected && attempt(() => reader.push(new Uint8Array([8]))).kind !== 'truncated frame') {
                wrong.push(`${end}: the reader accepted bytes after failing`);
            }
        }
        return wrong;
    """, {"stream": stream.hex(), "boundaries": boundaries})
    assert not outcome, outcome[:20]


def test_frame_reader_limit_and_failures(module_page):
    outcome = run_js(module_page, """
        const ping = wire.encodeMessage(wire.MessageType.ping, {nonce: 5n});
        const results = {};
        results.defaultLimit = new wire.FrameReader().maximumPayloadLength;
        // Exactly the limit passes, one more fails from the header alone.
        const atLimit = new wire.FrameReader(8);
        results.atLimit = atLimit.push(ping).length;
        results.overLimit = attempt(() => new wire.FrameReader(7).push(ping.subarray(0, 4)));
        // A limit raised after HelloAck (§2.2) applies to the next header.
        const raised = new wire.FrameReader(7);
        raised.maximumPayloadLength = 8;
        results.raised = raised.push(ping).length;
        results.badLimit = attempt(() => new wire.FrameReader(0x1000000));
        // The frames before a bad header in the same chunk come with the error.
        const bad = new Uint8Array([...ping, 0x4a, 0, 0, 0]);
        const reader = new wire.FrameReader();
        try { reader.push(bad); } catch (error) {
            results.before = {kind: error.kind, frames: error.frames.length};
        }
        results.again = attempt(() => reader.push(ping));
        // A 1 MiB payload in 1000-byte chunks arrives whole.
        const payload = new Uint8Array(wire.DEFAULT_MAXIMUM_PAYLOAD_LENGTH);
        for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff;
        const big = wire.frame(wire.MessageType.tileUpdate, payload);
        const chunked = new wire.FrameReader();
        const frames = [];
        for (let offset = 0; offset < big.length; offset += 1000) {
            frames.push(...chunked.push(big.subarray(offset, offset + 1000)));
        }
        results.big = frames.length === 1 && frames[0].payload.every((byte, i) => byte === ((i * 7) & 0xff));
        results.emptyPayload = new wire.FrameReader().push(new Uint8Array([0x45, 0, 0, 0]))[0].payload.length;
        return results;
    """)
    assert outcome["defaultLimit"] == 1_048_576
    assert outcome["atLimit"] == 1
    assert outcome["overLimit"]["kind"] == "frame too large"
    assert outcome["raised"] == 1
    assert outcome["badLimit"]["error"] == "RangeError"
    assert outcome["before"] == {"kind": "unknown message type", "frames": 1}
    assert outcome["again"]["kind"] == "unknown message type"
    assert outcome["big"] is True
    assert outcome["emptyPayload"] == 0


def test_encoders_refuse_values_that_have_no_encoding(module_page):
    outcome = run_js(module_page, """
        const E = wire.encode, T = wire.MessageType;
        const kind = (body) => { const r = attempt(body); return r.kind ?? r.error ?? 'no error'; };
        return {
            longString: kind(() => E.hostRegistered({hostName: 'x'.repeat(65536)})),
            longestString: attempt(() => E.hostRegistered({hostName: 'x'.repeat(65535)}).length).value,
            loneSurrogate: kind(() => E.clipboard({text: 'a\\uD800b'})),
            pointerRange: kind(() => E.pointer({x: 65536, y: 0})),
            negative: kind(() => E.updateRequest({requestID: -1})),
            fraction: kind(() => E.key({keysym: 1.5, down: true})),
            downNotBoolean: kind(() => E.key({keysym: 0x61, down: 2})),
            codeLetters: kind(() => E.hostAuth({method: 1, code: '12a456'})),
            codeNumber: attempt(() => wire.bytesToHex(E.hostAuth({method: 1, code: 42917}))).value,
            unknownMethod: kind(() => E.hostAuth({method: 5})),
            role: kind(() => E.hello({role: 3, capabilities: 7, software: ''})),
            screenZero: kind(() => E.screenInit({width: 0, height: 1, name: ''})),
            shortKey: kind(() => E.keyShare({role: 1, ephemeral: new Uint8Array(31),
                                             identity: new Uint8Array(32)})),
            shortSealed: kind(() => E.sealed({body: new Uint8Array(16)})),
            nonceRange: kind(() => E.ping({nonce: 1n << 64n})),
            nonceNumber: attempt(() => wire.bytesToHex(E.ping({nonce: 258}))).value,
            sessionID: kind(() => E.paired({sessionID: 'abc', mode: 1, peerCapabilities: 0, peerName: '',
                                            peerSoftware: ''})),
            frameType: kind(() => wire.frame(0x4a, new Uint8Array(0))),
            frameSize: kind(() => wire.frame(T.tileUpdate, new Uint8Array(0x1000000))),
            frameLimit: kind(() => wire.frame(T.tileUpdate, new Uint8Array(11), 10)),
            message: attempt(() => E.pointer({x: 70000, y: 0})).message,
        };
    """)
    assert outcome["longString"] == "field too long"
    assert outcome["longestString"] == 65537
    assert outcome["loneSurrogate"] == "invalid UTF-8"
    for key in ("pointerRange", "negative", "fraction", "downNotBoolean", "codeLetters", "unknownMethod", "role",
                "screenZero", "shortKey", "shortSealed", "nonceRange", "sessionID"):
        assert outcome[key] == "invalid field", key
    assert outcome["codeNumber"] == "01303432393137"
    assert outcome["nonceNumber"] == "0000000000000102"
    assert outcome["frameType"] == "unknown message type"
    assert outcome["frameSize"] == "frame too large"
    assert outcome["frameLimit"] == "frame too large"
    assert "Pointer.x" in outcome["message"] and "70000" in outcome["message"]


def test_decoders_check_what_section_3_says(module_page):
    """Cases next to §10.3's: each decoder's own checks, one per rule."""
    cases = {
        # name: (type, payload hex, kind or None)
        "keyCommit-version-2": (0x47, "02" + "00" * 32, "invalid field"),
        "keyCommit-short": (0x47, "01" + "00" * 31, "truncated message"),
        "keyCommit-long": (0x47, "01" + "00" * 33, "trailing bytes"),
        "keyShare-role-3": (0x48, "0103" + "00" * 64, "invalid field"),
        "keyShare-version-0": (0x48, "0001" + "00" * 64, "invalid field"),
        "keyShare-long": (0x48, "0102" + "00" * 65, "trailing bytes"),
        "sealed-16": (0x49, "00" * 16, "truncated message"),
        "sealed-17": (0x49, "00" * 17, None),
        "paired-mode-3": (0x07, "00" * 16 + "03" + "00" * 4 + "0000" * 3, "invalid field"),
        "viewerAuth-request-3": (0x04, "000003", "invalid field"),
        "viewerAuth-connect-no-host": (0x04, "000002", "truncated message"),
        "viewerAuth-trailing": (0x04, "00000100", "trailing bytes"),
        "hostAuth-code-short": (0x03, "0130343239", "truncated message"),
        "codeIssued-letter": (0x05, "3034323931410000025800", "invalid field"),
        "screenInit-too-wide": (0x40, "4001000101" + "0000", "invalid field"),
        "screenInit-16384": (0x40, "4000400001" + "0000", None),
        "screenInit-format-2": (0x40, "0001000102" + "0000", "invalid field"),
        "bye-unknown-reason": (0x0A, "ffff0000", None),
        "error-truncated-text": (0x0B, "000100", "truncated message"),
        "accessGranted-empty": (0x46, "", "truncated message"),
        "accessGranted-reserved-bits": (0x46, "fe", None),
        "clipboard-truncated-utf8": (0x45, "e282", "invalid UTF-8"),
        "clipboard-above-10ffff": (0x45, "f4908080", "invalid UTF-8"),
        "hello-software-cut-sequence": (0x01, "0001020000000700036869ef", "invalid UTF-8"),
        "tileUpdate-empty": (0x41, "", None),
        "ping-empty": (0x08, "", "truncated message"),
    }
    outcome = run_js(module_page, """
        return Object.fromEntries(Object.entries(input).map(([name, [type, hex]]) => {
            const result = attempt(() => plain(wire.decodeMessage(type, wire.hexToBytes(hex))));
            return [name, result.kind ?? (result.error ? result.error : null)];
        }));
    """, cases)
    wrong = {name: (outcome[name], kind) for name, (_, _, kind) in cases.items() if outcome[name] != kind}
    assert not wrong, f"got, expected: {wrong}"


def test_bye_and_error_sentences(module_page):
    outcome = run_js(module_page, """
        const range = (from, to) => Array.from({length: to - from + 1}, (_, i) => from + i);
        return {
            bye: range(0, 10).map((r) => [wire.byeReasonName(r), wire.describeBye(r)]),
            error: range(0, 13).map((c) => [wire.errorCodeName(c), wire.describeError(c)]),
            byeMax: wire.byeReasonName(65535),
        };
    """)
    bye_names = ["unknown_0", "normal", "peer_left", "relay_shutdown", "idle_timeout", "handshake_timeout",
                 "protocol_error", "revoked", "relay_restart", "declined", "unknown_10"]
    error_names = ["unknown_0", "unsupported_version", "malformed_message", "frame_too_large", "unexpected_message",
                   "authentication_failed", "invalid_code", "no_such_host", "host_busy", "rate_limited",
                   "relay_full", "timeout", "internal_error", "unknown_13"]
    assert [name for name, _ in outcome["bye"]] == bye_names
    assert [name for name, _ in outcome["error"]] == error_names
    assert outcome["byeMax"] == "unknown_65535"
    for table in ("bye", "error"):
        sentences = [sentence for _, sentence in outcome[table]]
        assert all(sentence.endswith(".") and len(sentence) > 20 for sentence in sentences), sentences
        assert len(set(sentences)) == len(sentences), f"{table}: two codes share a sentence"
        assert "unknown_0" in sentences[0] and sentences[-1].count("unknown_") == 1


def test_session_id_comes_as_its_own_16_bytes(module_page, vectors):
    valid, _ = vectors
    paired = next(vector for vector in valid if vector["name"] == "paired-to-host-attended")
    outcome = run_js(module_page, """
        const bytes = wire.hexToBytes(input);
        const fields = wire.decode.paired(bytes.subarray(4));
        return {
            isBytes: fields.sessionIDBytes instanceof Uint8Array && fields.sessionIDBytes.length === 16,
            own: fields.sessionIDBytes.buffer !== bytes.buffer,
            roundTrip: wire.bytesToHex(wire.encode.paired({...fields, sessionID: fields.sessionIDBytes})),
        };
    """, paired["bytes"].hex())
    assert outcome == {"isBytes": True, "own": True, "roundTrip": paired["bytes"][4:].hex()}


def test_notation_parser_reads_the_documents_forms():
    """The description parser itself, on the document's trickiest forms."""
    call = NotationParser('Key(keysym: 0xff0d (Return), isDown: true)').message()
    assert call.labelled() == {"keysym": "0xff0d", "isDown": "true"}
    call = NotationParser('Clipboard(text: "\\u{FEFF}hi"): a leading ef bb bf').message()
    assert call.labelled()["text"] == "\ufeffhi"
    call = NotationParser('ViewerAuth.key(.connect(hostID: "ho-x")): an empty token').message()
    assert call.path == ("ViewerAuth", "key") and call.positional()[0].call.labelled() == {"hostID": "ho-x"}
    with pytest.raises(AssertionError):
        NotationParser("an empty payload").message()
