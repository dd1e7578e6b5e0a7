"""The examples of "Web3 Is Just Infrastructure With a Hoodie" do what the
essay says they do.

Every check runs offline against real libraries (eth-account, eth-abi, rlp,
pycryptodome) and, where a specification or a library's documentation
publishes one, against a known test vector:

* EIP-191 ``personal_sign``: the "I♥SF" vector from the eth-account docs;
* EIP-712: the "Ether Mail" example of the EIP itself (domain separator,
  struct hash, digest and the signature by the key keccak256("cow"));
* the SIWE message is signed with a widely published test key (the first
  Hardhat/Anvil development account) and recovered again.

Blocks are read from the built site with ``named_block``, so the tests check
exactly what a reader sees.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import re
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import rlp
from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_defunct, encode_typed_data
from eth_account.typed_transactions import TypedTransaction
from eth_utils import function_signature_to_4byte_selector, is_checksum_address, keccak
from hexbytes import HexBytes

from conftest import Site, named_block

DOC = "essays/infrastructure/web3-is-just-infrastructure-with-a-hoodie"
SLUG = "web3-is-just-infrastructure-with-a-hoodie"

#: The first development account of Hardhat and Anvil, published in their docs.
TEST_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
TEST_ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def block(site: Site, what: str) -> str:
    return named_block(site, DOC, f"{SLUG}-{what}")


def monitor(site: Site) -> str:
    """The drift monitor: its core in the chapter, its tables and page in the
    appendix, run together as one module."""
    return block(site, "proxy-slots") + "\n\n" + block(site, "drift")


def run(code: str) -> tuple[dict[str, Any], str]:
    """Execute an example block; return its namespace and what it printed."""
    namespace: dict[str, Any] = {"__name__": "example"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<essay>", "exec", dont_inherit=True), namespace)
    return namespace, out.getvalue()


def page_text(site: Site) -> str:
    from bs4 import BeautifulSoup

    html = Path(site.html, f"{DOC}.html").read_text(encoding="utf-8")
    text = BeautifulSoup(html, "html.parser").get_text(" ")
    return re.sub(r"\s+", " ", text)


# -- Known vectors: the libraries the examples rely on are the real thing ----


def test_personal_sign_matches_the_published_vector() -> None:
    """EIP-191 version 0x45, checked against eth-account's documented vector."""
    key = "0xb25c7db31feed9122727bf0939dc769a96564b2de4c4726d035b36ecf1e5b364"
    message = encode_defunct(text="I♥SF")
    signed = Account.sign_message(message, key)
    assert signed.message_hash.hex().removeprefix("0x") == (
        "1476abb745d423bf09273f1afd887d951181d25adc66c4834a70491911b7f750"
    )
    assert signed.signature.hex().removeprefix("0x") == (
        "e6ca9bba58c88611fad66a6ce8f996908195593807c4b38bd528d2cff09d4eb3"
        "3e5bfbbf4d3e39b1a2fd816a7680c19ebebaf3a141b239934ad43cb33fcec8ce1c"
    )
    # The envelope is exactly what the essay describes: 0x19, "E", the rest
    # of the prefix, the length in decimal, the message.
    body = "I♥SF".encode()
    manual = keccak(b"\x19Ethereum Signed Message:\n" + str(len(body)).encode() + body)
    assert manual == signed.message_hash


EIP712_MAIL = {
    "types": {
        "EIP712Domain": [
            {"name": "name", "type": "string"},
            {"name": "version", "type": "string"},
            {"name": "chainId", "type": "uint256"},
            {"name": "verifyingContract", "type": "address"},
        ],
        "Person": [
            {"name": "name", "type": "string"},
            {"name": "wallet", "type": "address"},
        ],
        "Mail": [
            {"name": "from", "type": "Person"},
            {"name": "to", "type": "Person"},
            {"name": "contents", "type": "string"},
        ],
    },
    "primaryType": "Mail",
    "domain": {
        "name": "Ether Mail",
        "version": "1",
        "chainId": 1,
        "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC",
    },
    "message": {
        "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
        "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
        "contents": "Hello, Bob!",
    },
}


def digest(signable: Any) -> bytes:
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def test_eip712_encoder_matches_the_eip_example() -> None:
    signable = encode_typed_data(full_message=EIP712_MAIL)
    assert signable.version == b"\x01"  # EIP-191 version 0x01
    assert signable.header.hex() == (
        "f2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f"
    )
    assert signable.body.hex() == (
        "c52c0ee5d84264471806290a3f2c4cecfc5490626bf912d01f240d7a274b371e"
    )
    assert digest(signable).hex() == (
        "be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"
    )
    signed = Account.sign_message(signable, keccak(text="cow"))
    assert signed.signature.hex().removeprefix("0x") == (
        "4355c47d63924e8a72e509b65029052eb6c299d53a04e167c5775fd466751c9d"
        "07299936d304c153f6443dfa05f40ff007d72911b6f72307f996231605b915621c"
    )


# -- Sign-In with Ethereum ----------------------------------------------------

SIWE_LINE = re.compile(
    r"(?P<domain>[^\s]+) wants you to sign in with your Ethereum account:\n"
    r"(?P<address>0x[0-9a-fA-F]{40})\n"
    r"\n"
    r"(?:(?P<statement>[^\n]+)\n)?"
    r"\n"
    r"URI: (?P<uri>[^\n]+)\n"
    r"Version: (?P<version>1)\n"
    r"Chain ID: (?P<chain_id>[0-9]+)\n"
    r"Nonce: (?P<nonce>[A-Za-z0-9]{8,})\n"
    r"Issued At: (?P<issued_at>[^\n]+)"
    r"(?:\nExpiration Time: (?P<expiration_time>[^\n]+))?"
    r"(?:\nNot Before: (?P<not_before>[^\n]+))?"
    r"(?:\nRequest ID: (?P<request_id>[^\n]*))?"
    r"(?:\nResources:(?P<resources>(?:\n- [^\n]+)*))?\Z"
)


def siwe_fields(text: str) -> dict[str, str]:
    match = SIWE_LINE.match(text)
    assert match, "the message does not follow the EIP-4361 ABNF, in order"
    return {k: v for k, v in match.groupdict().items() if v is not None}


def test_the_checker_rejects_a_misordered_siwe_message(site: Site) -> None:
    text = block(site, "siwe")
    swapped = text.replace("Version: 1\nChain ID: 1", "Chain ID: 1\nVersion: 1")
    assert swapped != text
    assert SIWE_LINE.match(swapped) is None


def test_siwe_message_is_valid_and_verifies(site: Site) -> None:
    text = block(site, "siwe")
    fields = siwe_fields(text)
    assert fields["domain"] == "deploy.example.com"
    assert fields["uri"].startswith("https://deploy.example.com/")
    assert is_checksum_address(fields["address"])  # EIP-55 case
    assert fields["address"] == TEST_ADDRESS
    issued = datetime.fromisoformat(fields["issued_at"])
    expires = datetime.fromisoformat(fields["expiration_time"])
    assert 0 < (expires - issued).total_seconds() <= 15 * 60, "a short-lived login"
    assert fields["resources"].strip().startswith("- https://")

    # The server's half: recover the signer from an EIP-191 signature and
    # compare it with the address written in the message.
    message = encode_defunct(text=text)
    signature = Account.sign_message(message, TEST_KEY).signature
    assert Account.recover_message(message, signature=signature) == fields["address"]
    # A signature over a message that names another domain does not verify
    # for this one: the domain is inside the signed bytes.
    phished = encode_defunct(
        text=text.replace("deploy.example.com", "deploy.example.co")
    )
    assert Account.recover_message(phished, signature=signature) != TEST_ADDRESS


NONCE_ISSUED = datetime.fromisoformat("2026-11-24T09:30:00+00:00")


SESSION = "pre-login-7c1e"  # the cookie of the browser that asked for the nonce


def outstanding() -> dict:
    """The server's nonce store: pre-login session -> (nonce, when issued)."""
    return {
        SESSION: ("k7Fq2Rz9XwB4", NONCE_ISSUED),
        "pre-login-other": ("Zz9k2Qw8", NONCE_ISSUED),
    }


def test_the_server_check_accepts_the_login_once_and_refuses_the_rest(
    site: Site,
) -> None:
    """Review round 4: the essay had no server-side check to test. The
    relying party MUST check expiry, nonce and URI after parsing (ERC-4361)."""
    namespace, _ = run(block(site, "siwe-verify"))
    verify = namespace["verify_login"]
    text = block(site, "siwe")

    def sign(message: str, key: str = TEST_KEY) -> bytes:
        return bytes(Account.sign_message(encode_defunct(text=message), key).signature)

    now = datetime.fromisoformat("2026-11-24T09:31:00+00:00")
    issued = outstanding()
    host = "deploy.example.com"
    assert verify(text, sign(text), host, 1, SESSION, issued, now) == TEST_ADDRESS
    assert SESSION not in issued and "pre-login-other" in issued  # one delete
    with pytest.raises(ValueError, match="already used"):  # a replayed login
        verify(text, sign(text), host, 1, SESSION, issued, now)
    # Review round 11, finding 5: the nonce is bound to the browser that asked
    # for it. Outstanding, fresh and correctly signed, it still fails from
    # another pre-login session, and that session's own nonce is untouched.
    issued = outstanding()
    with pytest.raises(ValueError, match="nonce unknown"):
        verify(text, sign(text), host, 1, "pre-login-other", issued, now)
    with pytest.raises(ValueError, match="nonce unknown"):
        verify(text, sign(text), host, 1, "no-such-session", issued, now)
    assert issued == outstanding()

    def refused(
        message: str,
        why: str,
        signature: bytes | None = None,
        at: datetime = now,
        our_host: str = host,
        chain_id: int = 1,
    ) -> None:
        with pytest.raises(ValueError, match=why):
            verify(
                message,
                signature or sign(message),
                our_host,
                chain_id,
                SESSION,
                outstanding(),
                at,
            )

    refused(text, "domain is not ours", our_host="deploy.example.co")
    refused(
        text.replace("URI: https://deploy.example.com/", "URI: https://evil.example/"),
        "URI is not ours",
    )
    refused(text.replace("k7Fq2Rz9XwB4", "k7Fq2Rz9XwB5"), "nonce unknown")
    refused(text, "expired", at=datetime.fromisoformat("2026-11-24T09:35:00+00:00"))
    # Review round 10, finding 2: the expiry is optional, as in the grammar; the
    # nonce's five minutes on the server's clock bound freshness without it.
    no_expiry = re.sub(r"Expiration Time: .*\n", "", text)
    assert no_expiry != text
    assert (
        verify(no_expiry, sign(no_expiry), host, 1, SESSION, outstanding(), now)
        == TEST_ADDRESS
    )
    stale = NONCE_ISSUED + 2 * namespace["NONCE_TTL"]
    refused(no_expiry, "nonce unknown, expired", at=stale)
    other_key = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
    refused(text, "another key", signature=sign(text, other_key))

    # Review round 5: the session is bound to the chain the message names
    # (ERC-4361: where contract accounts MUST be resolved) ...
    refused(text, "another chain", chain_id=10)
    refused(text.replace("Chain ID: 1\n", "Chain ID: 10\n"), "another chain")
    # ... Not Before is honoured when present ...
    early = text.replace(
        "Expiration Time: 2026-11-24T09:35:00Z",
        "Expiration Time: 2026-11-24T09:35:00Z\nNot Before: 2026-11-24T09:34:00Z",
    )
    assert early != text
    refused(early, "not valid yet")  # three minutes ahead: beyond the skew
    later = datetime.fromisoformat("2026-11-24T09:33:00+00:00")
    assert (
        verify(early, sign(early), host, 1, SESSION, outstanding(), later)
        == TEST_ADDRESS
    )
    # ... and a naive clock is a ValueError, not a TypeError from the comparison.
    refused(text, "time zone", at=datetime(2026, 11, 24, 9, 31))
    # Review round 9, finding 7: so is a naive time in the nonce store.
    with pytest.raises(ValueError, match="time zone"):
        naive = {SESSION: ("k7Fq2Rz9XwB4", NONCE_ISSUED.replace(tzinfo=None))}
        verify(text, sign(text), host, 1, SESSION, naive, now)


def test_the_server_check_refuses_what_the_grammar_refuses(site: Site) -> None:
    """Review round 6: ERC-4361 says the full message MUST conform to the
    ABNF. A field regex picked values out of messages that do not."""
    namespace, _ = run(block(site, "siwe-verify"))
    verify = namespace["verify_login"]
    text = block(site, "siwe")
    assert SIWE_LINE.match(text)
    now = datetime.fromisoformat("2026-11-24T09:31:00+00:00")
    host = "deploy.example.com"

    def check(message: str) -> str:
        signature = Account.sign_message(
            encode_defunct(text=message), TEST_KEY
        ).signature
        return verify(message, bytes(signature), host, 1, SESSION, outstanding(), now)

    nonce_line = "Nonce: k7Fq2Rz9XwB4\n"
    not_siwe = [
        text.replace("Version: 1", "Version: 2"),
        text + "\nNonce: k7Fq2Rz9XwB4",  # a second Nonce line
        text.replace(nonce_line, "").replace(  # the nonce moved below the expiry
            "Expiration Time: 2026-11-24T09:35:00Z\n",
            "Expiration Time: 2026-11-24T09:35:00Z\n" + nonce_line,
        ),
        text.replace("Issued At: 2026-11-24T09:30:00Z\n", ""),
        text.replace("Issued At: 2026-11-24T09:30:00Z", "Issued At: yesterday"),
    ]
    for message in not_siwe:
        assert message != text
        with pytest.raises(ValueError, match="not an ERC-4361 message"):
            check(message)
    # The optional scheme is valid ABNF and names the same host.
    assert check("https://" + text) == TEST_ADDRESS
    # Issued At far in the future is refused: no clock we tolerate wrote it.
    future = text.replace(
        "Issued At: 2026-11-24T09:30:00Z", "Issued At: 2026-11-24T09:40:00Z"
    )
    with pytest.raises(ValueError, match="not valid yet"):
        check(future)


def test_the_server_check_refuses_fields_the_client_chose_badly(site: Site) -> None:
    """Review round 9: the optional scheme MUST match the origin, and a
    non-EIP-55 address is a grammar error, not "another key". Review round 10,
    finding 2: freshness comes from the server's clock, so a ten-year
    Expiration Time or a backdated Issued At buys nothing past the nonce's
    five minutes, and a device clock a little fast still logs in."""
    namespace, _ = run(block(site, "siwe-verify"))
    verify = namespace["verify_login"]
    text = block(site, "siwe")
    now = datetime.fromisoformat("2026-11-24T09:31:00+00:00")
    after_ttl = NONCE_ISSUED + namespace["NONCE_TTL"] + timedelta(seconds=1)

    def check(message: str, at: datetime = now) -> str:
        signature = Account.sign_message(
            encode_defunct(text=message), TEST_KEY
        ).signature
        return verify(
            message,
            bytes(signature),
            "deploy.example.com",
            1,
            SESSION,
            outstanding(),
            at,
        )

    def refused(message: str, why: str, at: datetime = now) -> None:
        assert message != text or at != now
        with pytest.raises(ValueError, match=why):
            check(message, at)

    assert check(text) == TEST_ADDRESS
    refused("http://" + text, "scheme is not https")
    refused("ftp://" + text, "scheme is not https")
    refused(text.replace(TEST_ADDRESS, TEST_ADDRESS.lower()), "EIP-55")
    refused(
        text.replace(TEST_ADDRESS, TEST_ADDRESS.upper().replace("0X", "0x")), "EIP-55"
    )
    assert namespace["NONCE_TTL"] == timedelta(minutes=5)
    assert "MAX_LOGIN_TTL" not in namespace  # the cookie sets the session's life
    # A ten-year expiry or a backdated Issued At is accepted once, fresh ...
    ten_years = text.replace(
        "Expiration Time: 2026-11-24T09:35:00Z", "Expiration Time: 2036-11-24T09:35:00Z"
    )
    backdated = text.replace(
        "Issued At: 2026-11-24T09:30:00Z", "Issued At: 2026-11-24T09:20:00Z"
    )
    for message in (ten_years, backdated):
        assert message != text
        assert check(message) == TEST_ADDRESS
        # ... and refused once the nonce is older than its TTL, whatever it says.
        refused(message, "nonce unknown, expired", at=after_ttl)
    refused(text, "nonce unknown, expired", at=after_ttl)
    # A device clock up to the skew ahead of ours still logs in; further, not.
    assert namespace["CLOCK_SKEW"] == timedelta(minutes=2)
    fast = text.replace(
        "Issued At: 2026-11-24T09:30:00Z", "Issued At: 2026-11-24T09:32:30Z"
    )
    assert check(fast) == TEST_ADDRESS  # 90 s ahead of `now`
    too_fast = text.replace(
        "Issued At: 2026-11-24T09:30:00Z", "Issued At: 2026-11-24T09:33:30Z"
    )
    refused(too_fast, "not valid yet")  # 150 s ahead


# -- Envelopes ----------------------------------------------------------------


def test_envelope_block_shows_both_readings(site: Site) -> None:
    """The block prints its own messages, so the check does not depend on the
    wording of eth-account's exception; it does depend on both decoders
    really refusing the bytes."""
    _, printed = run(block(site, "envelope"))
    assert printed.splitlines() == [
        "not an RLP transaction",
        "transaction type 0x19 is not assigned",
    ]
    signed_data = b"\x19Ethereum Signed Message:\n5hello"
    with pytest.raises((TypeError, ValueError)):
        TypedTransaction.from_bytes(HexBytes(signed_data))
    with pytest.raises(rlp.DecodingError):
        rlp.decode(signed_data)


def test_assigned_types_do_decode_as_transactions() -> None:
    """The contrast the essay draws: only an assigned type byte is read as a
    transaction, so 0x19 is safe exactly while it stays unassigned."""
    signed = Account.sign_transaction(
        {
            "type": 2,
            "chainId": 1,
            "nonce": 0,
            "maxPriorityFeePerGas": 1,
            "maxFeePerGas": 2,
            "gas": 21000,
            "to": TEST_ADDRESS,
            "value": 0,
        },
        TEST_KEY,
    )
    raw = bytes(signed.raw_transaction)
    assert raw[0] == 0x02 and raw[0] <= 0x7F  # an EIP-2718 type byte
    assert TypedTransaction.from_bytes(signed.raw_transaction).as_dict()["nonce"] == 0
    with pytest.raises(rlp.DecodingError):
        rlp.decode(raw)  # a typed transaction is not itself one RLP item


def test_eip712_release_approval_is_bound_to_chain_and_contract(site: Site) -> None:
    typed = json.loads(block(site, "eip712"))
    assert typed["primaryType"] == "ReleaseApproval"
    fields = {f["name"] for f in typed["types"]["ReleaseApproval"]}
    assert {"nonce", "deadline"} <= fields, "replay protection is the app's job"
    assert re.fullmatch(r"0x[0-9a-f]{64}", typed["message"]["digest"])

    signable = encode_typed_data(full_message=typed)
    signature = Account.sign_message(signable, TEST_KEY).signature
    assert Account.recover_message(signable, signature=signature) == TEST_ADDRESS

    # The same approval for a gate at another address, or on another chain,
    # is a different digest, so the signature does not carry over ...
    other_gate = json.loads(json.dumps(typed))
    other_gate["domain"]["verifyingContract"] = (
        "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
    )
    other_chain = json.loads(json.dumps(typed))
    other_chain["domain"]["chainId"] = 11155111
    for variant in (other_gate, other_chain):
        assert digest(encode_typed_data(full_message=variant)) != digest(signable)
        recovered = Account.recover_message(
            encode_typed_data(full_message=variant), signature=signature
        )
        assert recovered != TEST_ADDRESS


# -- What a Safe signer approves ------------------------------------------------

#: The constants of Safe's contracts (GnosisSafe.sol at v1.1.1 and v1.3.0,
#: Safe.sol today), as the contracts themselves hard-code them.
SAFE_TX_TYPEHASH = "bb8310d486368db6bd6f849402fdd73ad53d316b5a4b2644ad6efe0f941286d8"
DOMAIN_TYPEHASH_BEFORE_1_3 = (
    "035aff83d86937d35b32e04f0ddc6ff469290eef2f1b692d8a815c89404d4749"
)
DOMAIN_TYPEHASH_SINCE_1_3 = (
    "47e79534a245952e8b16893a336b85a3d9ea9fa8c573f3d803afb92a79469218"
)


def safe_tx_hash_by_hand(safe: str, tx: dict, chain_id: int | None = None) -> bytes:
    """GnosisSafe.encodeTransactionData, written out with abi.encode."""
    if chain_id is None:  # v1.1.1 and v1.2.0: the domain names no chain
        domain = keccak(
            encode(
                ["bytes32", "address"],
                [bytes.fromhex(DOMAIN_TYPEHASH_BEFORE_1_3), safe],
            )
        )
    else:
        domain = keccak(
            encode(
                ["bytes32", "uint256", "address"],
                [bytes.fromhex(DOMAIN_TYPEHASH_SINCE_1_3), chain_id, safe],
            )
        )
    struct = keccak(
        encode(
            [
                "bytes32",
                "address",
                "uint256",
                "bytes32",
                "uint8",
                "uint256",
                "uint256",
                "uint256",
                "address",
                "address",
                "uint256",
            ],
            [
                bytes.fromhex(SAFE_TX_TYPEHASH),
                tx["to"],
                tx["value"],
                keccak(hexstr=tx["data"]),
                tx["operation"],
                tx["safeTxGas"],
                tx["baseGas"],
                tx["gasPrice"],
                tx["gasToken"],
                tx["refundReceiver"],
                tx["nonce"],
            ],
        )
    )
    return keccak(b"\x19\x01" + domain + struct)


def test_the_safe_types_are_the_ones_the_contract_hashes(site: Site) -> None:
    typed = json.loads(block(site, "safe-tx"))
    fields = ",".join(f"{f['type']} {f['name']}" for f in typed["types"]["SafeTx"])
    assert keccak(text=f"SafeTx({fields})").hex() == SAFE_TX_TYPEHASH
    domain = ",".join(
        f"{f['type']} {f['name']}" for f in typed["types"]["EIP712Domain"]
    )
    assert keccak(text=f"EIP712Domain({domain})").hex() == DOMAIN_TYPEHASH_BEFORE_1_3


def test_two_implementations_agree_on_the_safe_transaction_hash(site: Site) -> None:
    """An EIP-712 library (eth-account) and Safe's own encoding, written out
    by hand, give the same digest: that is the independent check."""
    typed = json.loads(block(site, "safe-tx"))
    safe = typed["domain"]["verifyingContract"]
    assert is_checksum_address(safe)
    library = digest(encode_typed_data(full_message=typed))
    assert library == safe_tx_hash_by_hand(safe, typed["message"])
    # The same proposal to a v1.3.0+ Safe hashes differently: a checker has to
    # know the wallet's version.
    assert safe_tx_hash_by_hand(safe, typed["message"], chain_id=1) != library


def test_the_safe_proposal_is_a_delegate_call_that_names_the_attacker(
    site: Site,
) -> None:
    message = json.loads(block(site, "safe-tx"))["message"]
    assert message["operation"] == 1  # Enum.Operation.DelegateCall
    data = bytes.fromhex(message["data"].removeprefix("0x"))
    assert data[:4] == function_signature_to_4byte_selector("transfer(address,uint256)")
    from eth_abi import decode

    target, amount = decode(["address", "uint256"], data[4:])
    assert amount == 0
    assert target.lower() not in {message["to"].lower(), TEST_ADDRESS.lower()}
    assert message["safeTxGas"] == 45_746  # as in the public reproduction


# -- The interface definition ---------------------------------------------------


def test_selector_block_prints_the_selectors_it_claims(site: Site) -> None:
    code = block(site, "selector")
    _, printed = run(code)
    assert printed.splitlines() == ["0xa9059cbb", "0x70a08231"]
    for signature, value in [
        ("transfer(address,uint256)", "0xa9059cbb"),
        ("balanceOf(address)", "0x70a08231"),
    ]:
        assert "0x" + function_signature_to_4byte_selector(signature).hex() == value
        assert f"# {value}" in code  # the comments say what the code prints


def test_sha3_trap_value_in_the_prose_is_what_hashlib_gives(site: Site) -> None:
    trap = hashlib.sha3_256(b"transfer(address,uint256)").hexdigest()[:8]
    assert trap == "4b40e901"
    assert f"gives {trap} for the same string" in page_text(site)


def test_eth_call_request_encodes_balance_of_the_test_account(site: Site) -> None:
    request = json.loads(block(site, "eth-call"))
    assert request["method"] == "eth_call"
    call, block_parameter = request["params"]
    # EIP-1898: the block is named by hash and must still be canonical.
    assert set(block_parameter) == {"blockHash", "requireCanonical"}
    assert re.fullmatch(r"0x[0-9a-f]{64}", block_parameter["blockHash"])
    assert block_parameter["requireCanonical"] is True
    expected = function_signature_to_4byte_selector("balanceOf(address)") + encode(
        ["address"], [TEST_ADDRESS]
    )
    assert call["data"] == "0x" + expected.hex()
    assert is_checksum_address(call["to"])


def test_the_token_and_the_release_gate_are_different_contracts(site: Site) -> None:
    token = json.loads(block(site, "eth-call"))["params"][0]["to"]
    gate = json.loads(block(site, "eip712"))["domain"]["verifyingContract"]
    assert token.lower() != gate.lower()


def test_eip1967_slots_in_the_prose_are_keccak_minus_one(site: Site) -> None:
    text = page_text(site)
    for label in ("eip1967.proxy.implementation", "eip1967.proxy.admin"):
        slot = (int.from_bytes(keccak(text=label), "big") - 1).to_bytes(32, "big")
        assert "0x" + slot.hex() in text, label


def test_the_proxy_slots_are_the_ones_the_standards_and_contracts_use(
    site: Site,
) -> None:
    """Review round 6: the EIP-1967 slot alone misses USDC (ZeppelinOS slot,
    circlefin UpgradeabilityProxy.sol), ERC-1822's reference proxy and Safe
    (slot 0). Round 7: Safe's guard and module guard slots, from
    GuardManager.sol and ModuleManager.sol (v1.5.0)."""
    slots = run(monitor(site))[0]["SLOTS"]

    def hashed(label: str, minus: int = 0) -> int:
        return int.from_bytes(keccak(text=label), "big") - minus

    assert {name: int(value, 16) for name, value in slots.items()} == {
        "EIP-1967": hashed("eip1967.proxy.implementation", 1),
        # Review round 9, finding 1: the upgrade authorities' slots too.
        "EIP-1967 admin": hashed("eip1967.proxy.admin", 1),
        "beacon": hashed("eip1967.proxy.beacon", 1),
        "ZeppelinOS": hashed("org.zeppelinos.proxy.implementation"),
        "ZeppelinOS admin": hashed("org.zeppelinos.proxy.admin"),
        "ERC-1822": hashed("PROXIABLE"),
        "Safe singleton": 0,
        "Safe guard": hashed("guard_manager.guard.address"),
        "Safe module guard": hashed("module_manager.module_guard.address"),
        # Round 9: FallbackManager.sol (v1.4.1) FALLBACK_HANDLER_STORAGE_SLOT.
        "Safe fallback handler": hashed("fallback_manager.handler.address"),
    }
    assert slots["Safe fallback handler"] == (
        "0x6c9a6c4a39284e37ed1cf53d337577d14212a4870fb976a4366c693b939918d5"
    )
    # ADMIN_SLOT of circlefin's AdminUpgradeabilityProxy (USDC).
    assert slots["ZeppelinOS admin"] == (
        "0x10d6a54a4754c8869d6886b5f5d7fbfa5b4522237ea5c60d11bc4e7a1ff9390b"
    )


def test_the_storage_request_reads_the_eip1967_slot_of_the_token(site: Site) -> None:
    """The eth_getStorageAt example: the token of the eth_call example, the
    EIP-1967 implementation slot, and the same block, by hash (EIP-1898)."""
    request = json.loads(block(site, "get-storage"))
    call = json.loads(block(site, "eth-call"))
    slots = run(monitor(site))[0]["SLOTS"]
    assert request["method"] == "eth_getStorageAt"
    contract, slot, at = request["params"]
    assert contract == call["params"][0]["to"]
    assert slot == slots["EIP-1967"]
    assert (
        at
        == call["params"][1]
        == {"blockHash": at["blockHash"], "requireCanonical": True}
    )
    assert re.fullmatch(r"0x[0-9a-f]{64}", slot)  # all 64 digits, lower case


def test_the_baseline_names_only_known_slots_and_checksummed_addresses(
    site: Site,
) -> None:
    baseline = json.loads(block(site, "proxy-baseline"))
    namespace = run(monitor(site))[0]
    slots, calls, roles = namespace["SLOTS"], namespace["CALLS"], namespace["ROLES"]
    call = json.loads(block(site, "eth-call"))
    safe_tx = json.loads(block(site, "safe-tx"))
    token = call["params"][0]["to"]
    safe = safe_tx["domain"]["verifyingContract"]
    # Review round 10, finding 1: the token's ProxyAdmin and the timelock that
    # owns it have entries of their own.
    proxy_admin = baseline[token]["EIP-1967 admin"]
    timelock = baseline[proxy_admin]["Owner"]
    guardians = set(baseline[timelock]["Timelock cancellers"]) - {safe}
    assert len(guardians) == 1  # review round 11, finding 1
    assert set(baseline) == {token, proxy_admin, timelock, safe, *guardians}
    assert not set(slots) & set(calls) and not set(roles) & (set(slots) | set(calls))
    for contract, pinned in baseline.items():
        assert is_checksum_address(contract)
        assert set(pinned) <= set(slots) | set(calls) | set(roles)
        for name, value in pinned.items():
            if name in ("Safe threshold", "Timelock delay"):
                assert isinstance(value, int) and value >= 1
                continue
            addresses = value if isinstance(value, list) else [value]
            assert all(is_checksum_address(address) for address in addresses)
    # Round 9: the Safe pins its fallback handler and its module list; round
    # 10 (review 9, findings 1 and 2): the token its upgrade authority, and
    # the Safe who can sign.
    assert {"Safe fallback handler", "Safe modules"} <= set(baseline[safe])
    assert {"EIP-1967 admin", "ZeppelinOS admin"} <= set(baseline[token])
    assert int(baseline[token]["EIP-1967 admin"], 16) != 0  # a ProxyAdmin
    owners, threshold = baseline[safe]["Safe owners"], baseline[safe]["Safe threshold"]
    assert len(set(owners)) == len(owners) and 1 <= threshold <= len(owners)
    assert calls["Safe owners"] == "getOwners()"
    assert calls["Safe threshold"] == "getThreshold()"


def word(address: str) -> str:
    """An address as eth_getStorageAt returns it: one 32-byte word."""
    return "0x" + "00" * 12 + address.lower().removeprefix("0x")


def calls_agreeing_with(namespace: dict, baseline: dict) -> dict:
    """contract -> view signature -> decoded reply, as the baseline pins it."""
    calls = namespace["CALLS"]
    return {
        contract: {
            calls[name]: json.loads(json.dumps(value))
            for name, value in pinned.items()
            if name in calls
        }
        for contract, pinned in baseline.items()
    }


def members_agreeing_with(namespace: dict, baseline: dict) -> dict:
    """contract -> role hash -> holders, as the baseline pins them."""
    roles = namespace["ROLES"]
    return {
        contract: {
            roles[name]: list(value) for name, value in pinned.items() if name in roles
        }
        for contract, pinned in baseline.items()
    }


def test_a_change_pages_at_every_block_until_the_baseline_accepts_it(
    site: Site,
) -> None:
    """Round 7: a monitor that compares with its last reading adopts a hostile
    change after one page and forgets everything on restart. Against the
    reviewed baseline, Bybit's slot-0 overwrite (no event) pages at every
    block, from a fresh process too, until a reviewed change accepts it."""
    namespace, _ = run(monitor(site))
    drift, slots = namespace["drift"], namespace["SLOTS"]
    baseline = json.loads(block(site, "proxy-baseline"))
    safe = json.loads(block(site, "safe-tx"))["domain"]["verifyingContract"]
    chain = {  # contract -> slot -> word: the chain agrees with the baseline
        contract: {
            slots[name]: word(address)
            for name, address in pinned.items()
            if name in slots
        }
        for contract, pinned in baseline.items()
    }
    calls: list = []

    def storage_at(contract: str, slot: str, at: dict) -> str:
        calls.append((contract, slot, at))
        return chain[contract].get(slot, "0x" + "00" * 32)

    views = calls_agreeing_with(namespace, baseline)
    members = members_agreeing_with(namespace, baseline)

    def modules_at(contract: str, signature: str, at: dict) -> Any:
        assert at["requireCanonical"] is True
        return views[contract][signature]

    def members_at(contract: str, role: str, at: dict) -> list:
        assert at["requireCanonical"] is True
        return members[contract][role]

    def drift_at(block_hash: str, pinned: dict = baseline) -> list:
        return drift(storage_at, modules_at, pinned, block_hash, members_at)

    assert drift_at("0xb1") == []
    # Every contract that pins a slot is read at that block (the ProxyAdmin
    # and the timelock pin only views and roles).
    assert {c for c, _, _ in calls} == {
        c for c, pinned in baseline.items() if set(pinned) & set(slots)
    }
    assert all(
        at == {"blockHash": "0xb1", "requireCanonical": True} for _, _, at in calls
    )

    attacker = "0xbDd077f651EBe7f7b3cE16fe5F2b025BE2969516"
    chain[safe][slots["Safe singleton"]] = word(attacker)
    expected = baseline[safe]["Safe singleton"]
    page = [(safe, "Safe singleton", expected, attacker.lower())]
    assert drift_at("0xb2") == page
    assert drift_at("0xb3") == page  # not adopted
    fresh = run(monitor(site))[0]["drift"]  # a restarted monitor
    reread = json.loads(block(site, "proxy-baseline"))
    assert fresh(storage_at, modules_at, reread, "0xb4", members_at) == page
    assert json.loads(block(site, "proxy-baseline")) == baseline  # never written

    chain[safe][slots["Safe guard"]] = word(
        "0x2279B7A0a67DB372996a5FaB50D91eAA73d2eBe6"
    )
    assert [name for _, name, _, _ in drift_at("0xb5")] == [
        "Safe guard",
        "Safe singleton",
    ]  # a slot pinned at zero is watched too

    accepted = json.loads(json.dumps(baseline))  # the reviewed commit
    accepted[safe]["Safe singleton"] = attacker
    accepted[safe]["Safe guard"] = "0x2279B7A0a67DB372996a5FaB50D91eAA73d2eBe6"
    assert drift_at("0xb6", accepted) == []


def test_the_fallback_handler_and_the_module_list_are_pinned(site: Site) -> None:
    """Review round 9: a swapped fallback handler answers ERC-1271 for the
    Safe, and an enabled module runs calls with no owner signatures. Neither
    changes the singleton or a guard slot; both must page."""
    namespace, _ = run(monitor(site))
    drift, slots = namespace["drift"], namespace["SLOTS"]
    baseline = json.loads(block(site, "proxy-baseline"))
    safe = json.loads(block(site, "safe-tx"))["domain"]["verifyingContract"]
    storage = {
        contract: {
            slots[name]: word(address)
            for name, address in pinned.items()
            if name in slots
        }
        for contract, pinned in baseline.items()
    }
    modules: dict = {safe: []}
    views = calls_agreeing_with(namespace, baseline)
    members = members_agreeing_with(namespace, baseline)

    def storage_at(contract: str, slot: str, at: dict) -> str:
        return storage[contract].get(slot, "0x0")

    def modules_at(contract: str, signature: str, at: dict) -> Any:
        if signature == "getModulesPaginated(address,uint256)":
            return modules.get(contract, [])
        return views[contract][signature]

    def changed(pinned: dict, block_hash: str) -> list:
        return drift(
            storage_at, modules_at, pinned, block_hash, lambda c, r, _: members[c][r]
        )

    assert changed(baseline, "0xc1") == []
    handler = "0xbDd077f651EBe7f7b3cE16fe5F2b025BE2969516"
    storage[safe][slots["Safe fallback handler"]] = word(handler)
    expected = baseline[safe]["Safe fallback handler"]
    assert changed(baseline, "0xc2") == [
        (safe, "Safe fallback handler", expected, handler.lower())
    ]
    storage[safe][slots["Safe fallback handler"]] = word(expected)
    module = "0x8A791620dd6260079BF849Dc5567aDC3F2FdC318"
    modules[safe] = [module]
    assert changed(baseline, "0xc3") == [(safe, "Safe modules", [], [module.lower()])]
    accepted = json.loads(json.dumps(baseline))
    accepted[safe]["Safe modules"] = [module]  # EIP-55 case in the file
    unpinned_hops = namespace["unpinned_hops"]
    assert unpinned_hops(accepted) == [module]  # CI: the module needs an entry
    assert changed(accepted, "0xc4") == []
    modules[safe] = []  # a module removed is a change too
    assert changed(accepted, "0xc5") == [(safe, "Safe modules", [module], [])]


def test_an_admin_or_signer_change_pages(site: Site) -> None:
    """Review round 9, findings 1 and 2: a hostile admin change precedes a
    hostile upgrade, and a tampered session can add an owner or lower the
    threshold without touching any code path. Each pages; reordering the
    owner list (Safe keeps a linked list) does not."""
    namespace, _ = run(monitor(site))
    drift, slots = namespace["drift"], namespace["SLOTS"]
    baseline = json.loads(block(site, "proxy-baseline"))
    safe = json.loads(block(site, "safe-tx"))["domain"]["verifyingContract"]
    token = json.loads(block(site, "eth-call"))["params"][0]["to"]
    storage = {
        contract: {
            slots[name]: word(value) for name, value in pinned.items() if name in slots
        }
        for contract, pinned in baseline.items()
    }
    views = calls_agreeing_with(namespace, baseline)
    members = members_agreeing_with(namespace, baseline)

    def storage_at(contract: str, slot: str, at: dict) -> str:
        return storage[contract].get(slot, "0x0")

    def call_at(contract: str, signature: str, at: dict) -> Any:
        assert at == {"blockHash": "0xd1", "requireCanonical": True}
        return views[contract][signature]

    def members_at(contract: str, role: str, at: dict) -> list:
        return members[contract][role]

    def found() -> list:
        return drift(storage_at, call_at, baseline, "0xd1", members_at)

    def changes() -> list:
        return [(c, name) for c, name, _, _ in found()]

    assert changes() == []
    attacker = "0xbDd077f651EBe7f7b3cE16fe5F2b025BE2969516"
    storage[token][slots["EIP-1967 admin"]] = word(attacker)
    assert changes() == [(token, "EIP-1967 admin")]
    storage[token][slots["EIP-1967 admin"]] = word(baseline[token]["EIP-1967 admin"])
    storage[token][slots["ZeppelinOS admin"]] = word(attacker)
    assert changes() == [(token, "ZeppelinOS admin")]  # pinned at zero, watched
    storage[token][slots["ZeppelinOS admin"]] = "0x0"

    owners = views[safe]["getOwners()"]
    views[safe]["getOwners()"] = [owner.lower() for owner in reversed(owners)]
    assert changes() == []  # the same set, in another order and case
    views[safe]["getOwners()"] = [*owners, attacker]  # addOwnerWithThreshold
    assert changes() == [(safe, "Safe owners")]
    views[safe]["getOwners()"] = owners
    views[safe]["getThreshold()"] = 1  # changeThreshold
    assert found() == [(safe, "Safe threshold", baseline[safe]["Safe threshold"], 1)]


def test_a_proxy_admin_ownership_transfer_pages_though_no_slot_moves(
    site: Site,
) -> None:
    """Review round 10, finding 1: on OpenZeppelin 5 the admin slot never
    changes; upgrade rights move with the ProxyAdmin's owner, behind a
    timelock whose delay and roles can change too. Each pages while every
    storage slot stays as pinned, and CI refuses a baseline that names a new
    owner without an entry of its own."""
    namespace, _ = run(monitor(site))
    drift, slots, roles = namespace["drift"], namespace["SLOTS"], namespace["ROLES"]
    unpinned_hops = namespace["unpinned_hops"]
    baseline = json.loads(block(site, "proxy-baseline"))
    token = json.loads(block(site, "eth-call"))["params"][0]["to"]
    safe = json.loads(block(site, "safe-tx"))["domain"]["verifyingContract"]
    proxy_admin = baseline[token]["EIP-1967 admin"]
    timelock = baseline[proxy_admin]["Owner"]
    storage = {
        contract: {
            slots[name]: word(value) for name, value in pinned.items() if name in slots
        }
        for contract, pinned in baseline.items()
    }
    views = calls_agreeing_with(namespace, baseline)
    members = members_agreeing_with(namespace, baseline)

    def storage_at(contract: str, slot: str, at: dict) -> str:
        return storage[contract].get(slot, "0x0")

    def call_at(contract: str, signature: str, at: dict) -> Any:
        return views[contract][signature]

    def members_at(contract: str, role: str, at: dict) -> list:
        assert at == {"blockHash": "0xe1", "requireCanonical": True}
        return members[contract][role]

    def changes() -> list:
        found = drift(storage_at, call_at, baseline, "0xe1", members_at)
        return [(c, name) for c, name, _, _ in found]

    assert changes() == []
    # The chain ends at a set of humans: token -> ProxyAdmin -> timelock -> Safe.
    assert unpinned_hops(baseline) == []
    assert members[timelock][roles["Timelock proposers"]] == [safe]
    assert {"Safe owners", "Safe threshold"} <= set(baseline[safe])

    attacker = "0xbDd077f651EBe7f7b3cE16fe5F2b025BE2969516"
    before = json.loads(json.dumps(storage))
    views[proxy_admin]["owner()"] = attacker.lower()  # transferOwnership
    assert changes() == [(proxy_admin, "Owner")]
    assert storage == before  # no slot moved, so AdminChanged never fired
    views[proxy_admin]["owner()"] = timelock
    views[timelock]["getMinDelay()"] = 0  # updateDelay, through the queue
    assert changes() == [(timelock, "Timelock delay")]
    views[timelock]["getMinDelay()"] = baseline[timelock]["Timelock delay"]
    proposers = roles["Timelock proposers"]
    members[timelock][proposers] = [safe, attacker]  # grantRole
    assert changes() == [(timelock, "Timelock proposers")]
    members[timelock][proposers] = [safe]
    executors = roles["Timelock executors"]
    members[timelock][executors] = ["0x" + "00" * 20]  # the open role: anyone
    assert changes() == [(timelock, "Timelock executors")]
    members[timelock][executors] = [safe]
    assert changes() == []

    accepted = json.loads(json.dumps(baseline))  # a review that accepts the owner
    accepted[proxy_admin]["Owner"] = attacker
    assert unpinned_hops(accepted) == [attacker]  # ... fails CI until it is pinned
    with pytest.raises(ValueError, match="members_at"):
        drift(storage_at, call_at, baseline, "0xe1")  # roles pinned, none read


def test_the_timelock_roles_are_openzeppelins(site: Site) -> None:
    """TimelockController's role constants (OpenZeppelin 5.x), and the views
    the baseline pins for an owner and a delay."""
    namespace, _ = run(monitor(site))
    assert namespace["ROLES"] == {
        "UUPS upgraders": "0x" + keccak(text="UPGRADER_ROLE").hex(),
        "UUPS role admins": "0x" + "00" * 32,  # DEFAULT_ADMIN_ROLE
        "Timelock proposers": "0x" + keccak(text="PROPOSER_ROLE").hex(),
        "Timelock cancellers": "0x" + keccak(text="CANCELLER_ROLE").hex(),
        "Timelock executors": "0x" + keccak(text="EXECUTOR_ROLE").hex(),
        "Timelock admins": "0x" + "00" * 32,  # DEFAULT_ADMIN_ROLE
    }
    assert namespace["CALLS"]["Owner"] == "owner()"
    assert namespace["CALLS"]["Timelock delay"] == "getMinDelay()"
    authorities = namespace["AUTHORITIES"]
    assert {"EIP-1967 admin", "beacon", "Owner", "Timelock proposers"} <= authorities
    assert {"UUPS upgraders", "UUPS role admins"} <= authorities
    assert "Timelock executors" not in authorities


def test_a_role_gated_uups_proxy_pins_its_upgraders_and_their_admins(
    site: Site,
) -> None:
    """Review round 18, finding 3: a UUPS proxy whose _authorizeUpgrade is
    onlyRole(UPGRADER_ROLE), as OpenZeppelin's Wizard writes it, has no
    meaningful owner(). Its upgrade rights are the role's members, and the
    DEFAULT_ADMIN_ROLE holders who can grant the role. A grantRole to an
    attacker pages with every slot and view unchanged; CI refuses a
    baseline naming an upgrader or role admin without an entry of its own;
    and a queued grantRole on the proxy pages in the queue watch."""
    namespace, _ = run(monitor(site))
    drift, slots, roles = namespace["drift"], namespace["SLOTS"], namespace["ROLES"]
    unpinned_hops = namespace["unpinned_hops"]
    baseline = json.loads(block(site, "proxy-baseline"))
    token = json.loads(block(site, "eth-call"))["params"][0]["to"]
    timelock = baseline[baseline[token]["EIP-1967 admin"]]["Owner"]
    uups = "0x5FC8d32690cc91D4c39d9d3abcBD16989F875707"
    implementation = "0x0DCd1Bf9A1b36cE34237eEaFef220932846BCD82"
    zero = "0x" + "00" * 20
    baseline[uups] = {
        "EIP-1967": implementation,
        "EIP-1967 admin": zero,  # UUPS: no admin slot, the code decides
        "UUPS upgraders": [timelock],
        "UUPS role admins": [timelock],
    }
    assert unpinned_hops(baseline) == []  # both roles end at the pinned timelock
    storage = {uups: {slots["EIP-1967"]: word(implementation)}}
    members = members_agreeing_with(namespace, baseline)
    upgrader = "0x" + keccak(text="UPGRADER_ROLE").hex()
    assert roles["UUPS upgraders"] == upgrader
    assert members[uups] == {upgrader: [timelock], "0x" + "00" * 32: [timelock]}
    views = calls_agreeing_with(namespace, baseline)

    def storage_at(contract: str, slot: str, at: dict) -> str:
        return storage.get(contract, {}).get(slot, "0x0")

    def call_at(contract: str, signature: str, at: dict) -> Any:
        return views[contract][signature]

    def members_at(contract: str, role: str, at: dict) -> list:
        return members[contract][role]

    def changes() -> list:
        found = drift(storage_at, call_at, {uups: baseline[uups]}, "0xf1", members_at)
        return [(c, name) for c, name, _, _ in found]

    assert changes() == []
    attacker = "0xbDd077f651EBe7f7b3cE16fe5F2b025BE2969516"
    members[uups][upgrader] = [timelock, attacker]  # grantRole(UPGRADER_ROLE, ...)
    assert changes() == [(uups, "UUPS upgraders")]
    members[uups][upgrader] = [timelock]
    members[uups]["0x" + "00" * 32] = [attacker]  # the admin who can grant it
    assert changes() == [(uups, "UUPS role admins")]

    for role in ("UUPS upgraders", "UUPS role admins"):
        accepted = json.loads(json.dumps(baseline))
        accepted[uups][role] = [timelock, attacker]
        assert unpinned_hops(accepted) == [attacker]  # fails CI until pinned

    # The queue watch pages on a grantRole of UPGRADER_ROLE aimed at the
    # proxy, with its ready time, before any member changes.
    members[uups]["0x" + "00" * 32] = [timelock]
    assert changes() == []
    watch = run(block(site, "queue-watch"))[0]["QueueWatch"](baseline)
    grant = calldata(
        "grantRole(bytes32,address)",
        ["bytes32", "address"],
        [bytes.fromhex(upgrader[2:]), attacker],
    )
    operation = "0x" + "dd" * 32
    delay = baseline[timelock]["Timelock delay"]
    watch.apply(
        timelock_log(timelock, "CALL_SCHEDULED", operation, uups, grant, delay), 100
    )
    ((paged, entry),) = watch.pages()
    assert paged == operation and entry["ready_at"] == 100 + delay
    assert entry["calls"] == [(uups.lower(), "grantRole(bytes32,address)")]


def test_a_slot_that_holds_no_address_is_refused(site: Site) -> None:
    stored_address = run(monitor(site))[0]["stored_address"]
    assert stored_address(word("0xbDd077f651EBe7f7b3cE16fe5F2b025BE2969516")) == (
        "0xbdd077f651ebe7f7b3ce16fe5f2b025be2969516"
    )
    assert stored_address("0x0") == "0x" + "00" * 20  # nodes may return a short zero
    with pytest.raises(ValueError, match="not an address"):
        stored_address("0x" + "ff" * 32)


def test_the_guardian_canceller_shares_nothing_with_the_proposer(
    site: Site,
) -> None:
    """Review round 11, finding 1: the Safe that proposes could also cancel,
    so a tampered session left no one else to stop its own operation. The
    guardian is a pinned Safe with other owners, and holds no other role."""
    namespace, _ = run(monitor(site))
    baseline = json.loads(block(site, "proxy-baseline"))
    safe = json.loads(block(site, "safe-tx"))["domain"]["verifyingContract"]
    token = json.loads(block(site, "eth-call"))["params"][0]["to"]
    timelock = baseline[baseline[token]["EIP-1967 admin"]]["Owner"]
    roles = baseline[timelock]
    (guardian,) = set(roles["Timelock cancellers"]) - {safe}
    assert safe in roles["Timelock cancellers"]  # OpenZeppelin's constructor
    assert guardian not in roles["Timelock proposers"] + roles["Timelock executors"]
    assert guardian not in roles["Timelock admins"]
    assert not set(baseline[guardian]["Safe owners"]) & set(
        baseline[safe]["Safe owners"]
    )
    assert baseline[guardian]["Safe modules"] == []
    assert namespace["unpinned_hops"](baseline) == []  # the guardian is pinned
    without = json.loads(json.dumps(baseline))
    del without[guardian]
    assert namespace["unpinned_hops"](without) == [guardian]


#: OpenZeppelin's TimelockController events, as declared in its source.
OZ_TOPICS = {
    "CALL_SCHEDULED": "0x4cf4410cc57040e44862ef0f45f3dd5a5e02db8eb8add648d4b0e236f1d07dca",
    "CANCELLED": "0xbaa1eb22f2a492ba1a5fea61b8df4d27c6c8b5f3971e63bb58fa14ff72eedb70",
    "CALL_EXECUTED": "0xc2617efa69bab66782fa219543714338489c4e9e178271560a91b82c3f612b58",
}


def timelock_log(
    timelock: str,
    event: str,
    operation: str,
    target: str = "",
    data: bytes = b"",
    delay: int = 0,
    index: int = 0,
) -> dict:
    """A log as eth_getLogs returns it, for one of the three events."""
    topics = [OZ_TOPICS[event], operation, "0x" + index.to_bytes(32, "big").hex()]
    if event == "CANCELLED":
        return {"address": timelock, "topics": topics[:2], "data": "0x"}
    if event == "CALL_EXECUTED":
        body = encode(["address", "uint256", "bytes"], [target, 0, data])
    else:
        body = encode(
            ["address", "uint256", "bytes", "bytes32", "uint256"],
            [target, 0, data, b"\0" * 32, delay],
        )
    return {"address": timelock, "topics": topics, "data": "0x" + body.hex()}


def calldata(signature: str, types: list, values: list) -> bytes:
    return function_signature_to_4byte_selector(signature) + encode(types, values)


def test_a_scheduled_ownership_transfer_pages_before_any_value_moves(
    site: Site,
) -> None:
    """Review round 11, finding 1: a hostile transferOwnership queued through
    the timelock pages when it is scheduled, with its ready time, while every
    pinned value is still as the baseline says. Only Cancelled, or a review
    that accepts the operation, clears it."""
    slots_ns, _ = run(monitor(site))
    queue, _ = run(block(site, "queue-watch"))
    assert {name: queue[name] for name in OZ_TOPICS} == OZ_TOPICS
    baseline = json.loads(block(site, "proxy-baseline"))
    token = json.loads(block(site, "eth-call"))["params"][0]["to"]
    proxy_admin = baseline[token]["EIP-1967 admin"]
    timelock = baseline[proxy_admin]["Owner"]
    delay = baseline[timelock]["Timelock delay"]
    attacker = "0xbDd077f651EBe7f7b3cE16fe5F2b025BE2969516"

    storage = {
        contract: {
            slots_ns["SLOTS"][name]: word(value)
            for name, value in pinned.items()
            if name in slots_ns["SLOTS"]
        }
        for contract, pinned in baseline.items()
    }
    views = calls_agreeing_with(slots_ns, baseline)
    members = members_agreeing_with(slots_ns, baseline)

    def drift_now() -> list:
        return slots_ns["drift"](
            lambda c, slot, _: storage[c].get(slot, "0x0"),
            lambda c, signature, _: views[c][signature],
            baseline,
            "0xf1",
            lambda c, role, _: members[c][role],
        )

    watch = queue["QueueWatch"](baseline)
    hostile = "0x" + "aa" * 32
    data = calldata("transferOwnership(address)", ["address"], [attacker])
    watch.apply(
        timelock_log(timelock, "CALL_SCHEDULED", hostile, proxy_admin, data, delay),
        1_795_513_200,
    )
    assert drift_now() == []  # nothing has moved yet ...
    ((operation, page),) = watch.pages()  # ... and the queue watch pages
    assert operation == hostile
    assert page["ready_at"] == 1_795_513_200 + delay
    assert page["calls"] == [(proxy_admin.lower(), "transferOwnership(address)")]
    assert page["timelock"] == timelock

    # A retraction clears nothing; the wrong contract's logs are ignored.
    retracted = timelock_log(timelock, "CANCELLED", hostile)
    watch.apply({**retracted, "removed": True}, 1_795_513_212)
    other = "0x2279B7A0a67DB372996a5FaB50D91eAA73d2eBe6"
    watch.apply(timelock_log(other, "CANCELLED", hostile), 1_795_513_212)
    assert [op for op, _ in watch.pages()] == [hostile]
    watch.apply(retracted, 1_795_513_224)  # the guardian cancels
    assert watch.pages() == []

    # updateDelay is aimed at the timelock itself, grantRole at any target.
    cut = "0x" + "bb" * 32
    update = calldata("updateDelay(uint256)", ["uint256"], [0])
    watch.apply(
        timelock_log(timelock, "CALL_SCHEDULED", cut, timelock, update, delay), 0
    )
    grant = calldata(
        "grantRole(bytes32,address)",
        ["bytes32", "address"],
        [bytes.fromhex(slots_ns["ROLES"]["Timelock proposers"][2:]), attacker],
    )
    watch.apply(
        timelock_log(timelock, "CALL_SCHEDULED", cut, timelock, grant, delay, 1), 0
    )
    ((_, batch),) = watch.pages()
    assert [name for _, name in batch["calls"]] == [
        "updateDelay(uint256)",
        "grantRole(bytes32,address)",
    ]
    watch.apply(timelock_log(timelock, "CALL_EXECUTED", cut, timelock, update), delay)
    assert watch.pages()[0][1]["executed"] is True  # still paged: it ran unreviewed

    # A routine call to an unpinned contract does not page; a reviewed
    # operation listed in the accepting change stops paging.
    routine = "0x" + "cc" * 32
    pay = calldata("transfer(address,uint256)", ["address", "uint256"], [attacker, 1])
    watch.apply(timelock_log(timelock, "CALL_SCHEDULED", routine, other, pay, delay), 0)
    assert [op for op, _ in watch.pages()] == [cut]
    watch.accepted.add(cut)
    assert watch.pages() == []


def test_a_head_difference_pages_at_once_and_only_finality_closes_it(
    site: Site,
) -> None:
    """Review round 11, finding 3: Bybit's overwrite emitted no event, and a
    finalized-only read would page 13 to 19 minutes late. The page opens at
    the first head that differs; a reorg that undoes it does not close it;
    a clean finalized read at or after that height does."""
    namespace, _ = run(monitor(site))
    page = namespace["DriftPage"]()
    change = [("0xsafe", "Safe singleton", "0xold", "0xnew")]
    assert page.at_head(100, []) is False
    assert page.at_head(101, change) is True  # at once, not at finality
    assert page.at_head(102, []) is True  # a reorg undid it: still paged
    assert page.at_finalized(99, []) is True  # too old to speak for block 101
    assert page.at_finalized(101, []) is False  # the record agrees: closed
    assert page.at_head(103, change) is True
    assert page.at_finalized(103, change) is True  # confirmed: a review must accept
    assert page.at_finalized(104, []) is False  # ... which changed the baseline


def test_a_pending_owner_pinned_at_zero_pages_when_a_transfer_starts(
    site: Site,
) -> None:
    """Review round 11, finding 5: an Ownable2Step owner's pendingOwner() is
    the warning before acceptOwnership."""
    namespace, _ = run(monitor(site))
    assert namespace["CALLS"]["Pending owner"] == "pendingOwner()"
    uups = "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0"
    zero = "0x" + "00" * 20
    pinned = {uups: {"Pending owner": zero}}
    views = {uups: {"pendingOwner()": zero}}

    def changes() -> list:
        return namespace["drift"](
            lambda *_: "0x0", lambda c, sig, _: views[c][sig], pinned, "0xa1"
        )

    assert changes() == []
    attacker = "0xbDd077f651EBe7f7b3cE16fe5F2b025BE2969516"
    views[uups]["pendingOwner()"] = attacker  # transferOwnership started
    assert changes() == [(uups, "Pending owner", zero, attacker.lower())]


# -- The write path -------------------------------------------------------------


# The Geth rules below are modelled, not run: they mirror go-ethereum at commit
# 02b73d4ea7181464175e0a6cbecc0a3a2655a562 (20 August 2026).


def geth_accepts(old: Any, new: Any, bump: int) -> bool:
    """Geth's replacement rule for the legacy pool (core/txpool/legacypool/
    list.go, list.Add): both caps strictly higher, and each at least
    old * (100 + bump) / 100."""
    old_cap, old_tip = old.max_fee_per_gas, old.max_priority_fee_per_gas
    new_cap, new_tip = new.max_fee_per_gas, new.max_priority_fee_per_gas
    if old_cap >= new_cap or old_tip >= new_tip:
        return False
    threshold_cap = old_cap * (100 + bump) // 100
    threshold_tip = old_tip * (100 + bump) // 100
    return new_cap >= threshold_cap and new_tip >= threshold_tip


def geth_blob_accepts(old: Any, new: Any, bump: int = 100) -> bool:
    """Geth's blob-pool rule (core/txpool/blobpool/blobpool.go, the
    ErrReplaceUnderpriced checks): fee cap, tip and blob fee cap each strictly
    higher, and each at least old * (100 + bump) / 100."""
    if new.max_fee_per_blob_gas is None:
        return False  # a blob transaction always carries a blob fee cap
    pairs = [
        (old.max_fee_per_gas, new.max_fee_per_gas),
        (old.max_priority_fee_per_gas, new.max_priority_fee_per_gas),
        (old.max_fee_per_blob_gas, new.max_fee_per_blob_gas),
    ]
    for before, after in pairs:
        if after <= before:
            return False
    return all(after >= before * (100 + bump) // 100 for before, after in pairs)


@pytest.fixture
def bump(site: Site) -> dict[str, Any]:
    namespace, printed = run(block(site, "bump"))
    namespace["printed"] = printed
    return namespace


PRICES = [
    (0, 0),
    (1, 0),
    (9, 1),
    (10, 10),
    (11, 9),
    (30 * 10**9, 10**9),
    (2**200 + 7, 2**100 + 3),
]


@pytest.fixture
def restart(site: Site) -> Any:
    namespace, printed = run(block(site, "nonce-restart"))
    assert printed.strip() == "['0x02f8..07', '0x02f8..08', '0x02f8..09']"
    return namespace["restart"]


class Pool:
    """One account's view in a Geth-like pool: a block takes only the next
    nonce, so a missing nonce stalls everything above it."""

    def __init__(self, latest: int) -> None:
        self.latest = latest
        self.txs: dict[int, str] = {}

    def send(self, raw: str) -> None:
        self.txs.setdefault(int(raw.rsplit("..", 1)[1]), raw)  # "already known"

    def mine(self) -> int:
        while self.latest in self.txs:
            del self.txs[self.latest]
            self.latest += 1
        return self.latest


def raw(nonce: int) -> str:
    return f"0x02f8..{nonce:02d}"


def test_a_restart_rebroadcasts_before_it_allocates(restart: Any) -> None:
    """Review round 17, finding 2: the node lost 8 and 9 from its pool.
    Resuming at the persisted next nonce (10) alone leaves a gap at 8 that
    stalls 10 for ever; rebroadcasting from `latest` first closes it."""
    signed = {n: raw(n) for n in range(7, 10)}
    gap = Pool(latest=7)
    gap.send(raw(7))  # all the restarted node kept
    gap.send(raw(10))  # the old rule: allocate 10 at once
    assert gap.mine() == 8 and 10 in gap.txs  # stuck behind the hole at 8
    pool = Pool(latest=7)
    pool.send(raw(7))
    for tx in restart(latest=7, pending=8, next_nonce=10, signed=signed):
        pool.send(tx)
    pool.send(raw(10))
    assert pool.mine() == 11 and pool.txs == {}


def test_a_restart_refuses_what_it_cannot_repair(restart: Any) -> None:
    signed = {7: raw(7), 9: raw(9)}
    with pytest.raises(RuntimeError, match=r"\[8\] were never persisted"):
        restart(latest=7, pending=7, next_nonce=10, signed=signed)
    with pytest.raises(RuntimeError, match="another writer"):
        restart(latest=11, pending=11, next_nonce=10, signed={})
    with pytest.raises(RuntimeError, match="another writer"):
        restart(latest=9, pending=12, next_nonce=10, signed={9: raw(9)})
    assert restart(latest=10, pending=10, next_nonce=10, signed={}) == []


def test_min_replacement_is_exactly_the_geth_floor(bump: dict[str, Any]) -> None:
    fees, floor = bump["Fees"], bump["min_replacement"]
    assert bump["PRICE_BUMP"] == 10 and bump["BLOB_PRICE_BUMP"] == 100
    for cap, tip in PRICES:
        old = fees(cap, tip)
        least = floor(old)
        assert least.max_fee_per_blob_gas is None
        assert geth_accepts(old, least, 10), (old, least)
        # One wei less on either price is refused: it really is the floor.
        assert not geth_accepts(
            old, fees(least.max_fee_per_gas - 1, least.max_priority_fee_per_gas), 10
        )
        assert not geth_accepts(
            old, fees(least.max_fee_per_gas, least.max_priority_fee_per_gas - 1), 10
        )


def test_a_blob_replacement_raises_all_three_prices(bump: dict[str, Any]) -> None:
    """The blob pool checks the blob fee cap too; a two-price floor (the
    essay's first version) produced replacements Geth refuses."""
    fees, floor = bump["Fees"], bump["min_replacement"]
    for cap, tip in PRICES:
        for blob_cap in (0, 1, 7, 5 * 10**9):
            old = fees(cap, tip, blob_cap)
            least = floor(old)
            assert geth_blob_accepts(old, least), (old, least)
            for field in (
                "max_fee_per_gas",
                "max_priority_fee_per_gas",
                "max_fee_per_blob_gas",
            ):
                cheaper = dataclasses.replace(
                    least, **{field: getattr(least, field) - 1}
                )
                assert not geth_blob_accepts(old, cheaper), field
            # The legacy 10% floor is not enough for a blob transaction.
            ten_percent = fees(
                old.max_fee_per_gas * 110 // 100 + 1,
                old.max_priority_fee_per_gas * 110 // 100 + 1,
                old.max_fee_per_blob_gas * 110 // 100 + 1,
            )
            if blob_cap > 1 and tip > 1 and cap > 1:
                assert not geth_blob_accepts(old, ten_percent)


def test_resubmission_follows_the_market_but_never_drops_below_the_floor(
    bump: dict[str, Any],
) -> None:
    fees, resubmit = bump["Fees"], bump["resubmission"]
    stuck = fees(30_000_000_000, 1_000_000_000)
    assert bump["printed"].splitlines() == [
        "Fees(max_fee_per_gas=33000000000, max_priority_fee_per_gas=1100000000,"
        " max_fee_per_blob_gas=None)",
        "Fees(max_fee_per_gas=82000000000, max_priority_fee_per_gas=2000000000,"
        " max_fee_per_blob_gas=None)",
        "Fees(max_fee_per_gas=60000000000, max_priority_fee_per_gas=2000000000,"
        " max_fee_per_blob_gas=10000000000)",
        "3",
    ]
    # Market fell: the floor wins. Market rose: the market wins.
    cheap = resubmit(stuck, base_fee=1_000_000_000, tip=100_000_000)
    dear = resubmit(stuck, base_fee=40_000_000_000, tip=2_000_000_000)
    for new in (cheap, dear):
        assert geth_accepts(stuck, new, 10)
        assert new.max_fee_per_gas >= new.max_priority_fee_per_gas
    assert cheap == bump["min_replacement"](stuck)
    assert dear.max_fee_per_gas == 82_000_000_000
    # The same for a blob transaction, with the blob fee following its market.
    blob = fees(30_000_000_000, 1_000_000_000, 5_000_000_000)
    for blob_base_fee in (1, 20_000_000_000):
        new = resubmit(blob, 1_000_000_000, 100_000_000, blob_base_fee)
        assert geth_blob_accepts(blob, new)
    assert resubmit(blob, 1, 1, 20_000_000_000).max_fee_per_blob_gas == 40_000_000_000


def test_a_replacement_is_a_second_signed_transaction_with_the_same_nonce(
    bump: dict[str, Any],
) -> None:
    fees = bump["Fees"]
    stuck = fees(30_000_000_000, 1_000_000_000)
    again = bump["min_replacement"](stuck)

    def signed(f: Any) -> bytes:
        tx = {
            "type": 2,
            "chainId": 1,
            "nonce": 7,
            "maxFeePerGas": f.max_fee_per_gas,
            "maxPriorityFeePerGas": f.max_priority_fee_per_gas,
            "gas": 21000,
            "to": TEST_ADDRESS,  # a "cancel": a zero-value transfer to yourself
            "value": 0,
        }
        return bytes(Account.sign_transaction(tx, TEST_KEY).raw_transaction)

    first, second = signed(stuck), signed(again)
    assert first != second
    decoded = [
        TypedTransaction.from_bytes(HexBytes(raw)).as_dict() for raw in (first, second)
    ]
    assert decoded[0]["nonce"] == decoded[1]["nonce"] == 7
    assert Account.recover_transaction(second) == TEST_ADDRESS


class ReservingPool:
    """Geth's subpool reservation (core/txpool/reserver.go, errors.go): an
    address with a pending blob transaction is held by the blob pool, and any
    transaction of another type from it fails with ErrAlreadyReserved."""

    def __init__(self, pending_type: int, pending: Any) -> None:
        self.pending_type, self.pending = pending_type, pending

    def add(self, tx: dict, fees: Any) -> str:
        blob_pending = self.pending_type == 3
        if blob_pending != (tx["type"] == 3):
            return "address already reserved"
        if blob_pending:
            if tx.get("blob_count", 0) < 1:
                return "blob transaction without blobs"  # EIP-4844
            ok = geth_blob_accepts(self.pending, fees)
        else:
            ok = geth_accepts(self.pending, fees, 10)
        return "replaced" if ok else "replacement transaction underpriced"


def fees_of(bump: dict[str, Any], tx: dict) -> Any:
    return bump["Fees"](
        tx["maxFeePerGas"], tx["maxPriorityFeePerGas"], tx.get("maxFeePerBlobGas")
    )


def test_a_cancel_replaces_the_stuck_transaction_of_either_kind(
    bump: dict[str, Any],
) -> None:
    fees, cancel = bump["Fees"], bump["cancellation"]
    plain = fees(30_000_000_000, 1_000_000_000)
    tx = cancel(plain, TEST_ADDRESS, 7)
    assert tx["type"] == 2 and tx["to"] == tx["from"] == TEST_ADDRESS
    assert tx["value"] == 0 and tx["nonce"] == 7
    assert ReservingPool(2, plain).add(tx, fees_of(bump, tx)) == "replaced"
    signable = {k: v for k, v in tx.items() if k != "from"}
    raw = Account.sign_transaction({**signable, "chainId": 1, "gas": 21000}, TEST_KEY)
    assert Account.recover_transaction(raw.raw_transaction) == TEST_ADDRESS

    blob = fees(30_000_000_000, 1_000_000_000, 5_000_000_000)
    tx = cancel(blob, TEST_ADDRESS, 7)
    assert tx["type"] == 3 and tx["blob_count"] >= 1
    assert ReservingPool(3, blob).add(tx, fees_of(bump, tx)) == "replaced"


def test_the_blob_cancel_template_signs_as_a_real_type_3_transaction(
    bump: dict[str, Any],
) -> None:
    """Review round 4: the template used to carry "blobs": 1, a key no
    signer accepts. Filled in as its docstring says (chainId, gas and
    blob_count zero blobs), eth-account signs it, with ckzg computing the
    versioned hashes, and the decoded transaction keeps the template's fees."""
    blob = bump["Fees"](30_000_000_000, 1_000_000_000, 5_000_000_000)
    template = bump["cancellation"](blob, TEST_ADDRESS, 7)
    assert "blobs" not in template
    wire = {k: v for k, v in template.items() if k not in ("from", "blob_count")}
    blobs = [b"\0" * 131072] * template["blob_count"]  # 4096 field elements of 32 bytes
    signed = Account.sign_transaction(
        {**wire, "chainId": 1, "gas": 21000}, TEST_KEY, blobs=blobs
    )
    decoded = TypedTransaction.from_bytes(HexBytes(signed.raw_transaction)).as_dict()
    assert (
        TypedTransaction.from_bytes(HexBytes(signed.raw_transaction)).transaction_type
        == 3
    )
    assert len(decoded["blobVersionedHashes"]) == template["blob_count"]
    assert all(
        bytes(h)[0] == 0x01 for h in decoded["blobVersionedHashes"]
    )  # EIP-4844 KZG version
    for key in (
        "nonce",
        "maxFeePerGas",
        "maxPriorityFeePerGas",
        "maxFeePerBlobGas",
        "value",
    ):
        assert decoded[key] == template[key], key
    assert Account.recover_transaction(signed.raw_transaction) == TEST_ADDRESS
    # The template itself, passed as is, is not a transaction.
    with pytest.raises(TypeError):
        Account.sign_transaction(template, TEST_KEY)


def test_a_plain_cancel_is_refused_while_a_blob_transaction_is_pending(
    bump: dict[str, Any],
) -> None:
    """The essay's first version cancelled every stuck transaction with a
    zero-value type-2 transfer; Geth refuses that for a pending blob sender,
    however high its fees."""
    blob = bump["Fees"](30_000_000_000, 1_000_000_000, 5_000_000_000)
    pool = ReservingPool(3, blob)
    plain_cancel = {"type": 2, "maxFeePerGas": 10**12, "maxPriorityFeePerGas": 10**11}
    assert (
        pool.add(plain_cancel, fees_of(bump, plain_cancel))
        == "address already reserved"
    )
    tx = bump["cancellation"](blob, TEST_ADDRESS, 7)
    assert pool.add(tx, fees_of(bump, tx)) == "replaced"
    # ... and a blob cancel at the legacy 10% bump is still underpriced.
    cheap = {
        **tx,
        "maxFeePerGas": 33_000_000_000,
        "maxPriorityFeePerGas": 1_100_000_000,
        "maxFeePerBlobGas": 5_500_000_000,
    }
    assert (
        pool.add(cheap, fees_of(bump, cheap)) == "replacement transaction underpriced"
    )


# -- The indexer ------------------------------------------------------------------


def log(
    tx: str, block_hash: str, number: int, index: int = 0, removed: bool = False
) -> dict:
    """A log notification shaped like Geth's eth_subscribe("logs") results."""
    entry = {
        "address": "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
        "blockHash": block_hash,
        "blockNumber": hex(number),
        "logIndex": hex(index),
        "transactionHash": tx,
        "topics": [],
        "data": "0x",
    }
    if removed:
        entry["removed"] = True
    return entry


class Chain:
    """A node's view of a finalized chain: block hashes by height, and
    eth_getLogs by blockHash (EIP-234) returning that block's logs."""

    def __init__(
        self, deposits: dict[int, list[str]], first: int = 90, last: int = 400
    ):
        self.hashes = {n: f"0xb{n}" for n in range(first, last + 1)}
        self.deposits = deposits
        self.calls: list[int] = []
        self.fail_at: int | None = None

    def block_hash(self, height: int) -> str:
        return self.hashes[height]

    def logs_at(self, block_hash: str) -> list:
        height = next(n for n, h in self.hashes.items() if h == block_hash)
        self.calls.append(height)
        if height == self.fail_at:
            raise ConnectionError("node went away")
        return [
            log(tx, block_hash, height, index)
            for index, tx in enumerate(self.deposits.get(height, []))
        ]


@pytest.fixture
def indexer_class(site: Site) -> Any:
    namespace, _ = run(block(site, "indexer"))
    return namespace["DepositIndexer"]


def settle(indexer: Any, finalized: int, node: Chain, receipts_from: int = 0) -> list:
    return indexer.settle(finalized, node.block_hash, node.logs_at, receipts_from)


def test_the_race_the_review_found_cannot_lose_a_deposit(indexer_class: Any) -> None:
    """The review's race: the subscription delivered the canonical log, then a
    range read taken before the reorg replaced it with the orphan, and the
    essay's first version settled to nothing. Credits now come only from reads
    by canonical hash, whatever the pending view holds."""
    node = Chain({100: ["0xaa"]})
    indexer = indexer_class(settled_through=99)
    indexer.apply(log("0xaa", "0xb100", 100))  # canonical, from the subscription
    indexer.apply(log("0xdead", "0xorphan", 100))  # the stale read's orphan
    indexer.pending.pop(("0xb100", 0))  # ... which displaced the canonical row
    assert settle(indexer, 100, node) == [("0xaa", 0)]
    assert indexer.credited == {("0xaa", 0)}
    assert indexer.pending == {}  # the orphan is dropped for good, uncredited


def test_blocks_finalized_while_disconnected_are_all_read(indexer_class: Any) -> None:
    """The review's gap: no notification ever arrived for 101..299, which
    finalized while the client was away. The walk from the watermark reads
    them anyway."""
    node = Chain({150: ["0xmid"], 299: ["0xlate"]})
    indexer = indexer_class(settled_through=100)
    assert settle(indexer, 300, node) == [("0xmid", 0), ("0xlate", 0)]
    assert node.calls == list(range(101, 301))  # every block, in order
    assert indexer.settled_through == 300


def test_nothing_is_credited_before_finalized(indexer_class: Any) -> None:
    node = Chain({101: ["0xsoon"]})
    indexer = indexer_class(settled_through=99)
    indexer.apply(log("0xsoon", "0xb101", 101))
    assert settle(indexer, 100, node) == []
    assert list(indexer.pending) == [("0xb101", 0)]  # still shown as incoming
    assert settle(indexer, 101, node) == [("0xsoon", 0)]
    assert indexer.pending == {}


def test_a_failed_read_resumes_where_it_stopped_and_credits_once(
    indexer_class: Any,
) -> None:
    node = Chain({110: ["0xa"], 120: ["0xb"], 130: ["0xc"]})
    node.fail_at = 120
    indexer = indexer_class(settled_through=100)
    with pytest.raises(ConnectionError):
        settle(indexer, 140, node)
    assert indexer.settled_through == 119  # the last whole block
    assert indexer.credited == {("0xa", 0)}
    node.fail_at = None
    assert settle(indexer, 140, node) == [("0xb", 0), ("0xc", 0)]
    assert settle(indexer, 140, node) == []  # a second pass changes nothing
    assert indexer.credited == {("0xa", 0), ("0xb", 0), ("0xc", 0)}


def test_a_node_answering_for_another_block_is_refused(indexer_class: Any) -> None:
    """A node that ignores the blockHash filter and answers by height from a
    fork must not decide what is credited."""
    node = Chain({100: ["0xaa"]})
    indexer = indexer_class(settled_through=99)

    def by_height(block_hash: str) -> list:
        return [log("0xdead", "0xorphan", 100)]

    with pytest.raises(ValueError):
        indexer.settle(100, node.block_hash, by_height, 0)
    assert indexer.credited == set() and indexer.settled_through == 99


class PrunedChain(Chain):
    """A Reth full node before PR 27002: its headers stay, its receipts
    below `pruned_below` are gone, and eth_getLogs answers [] for them."""

    def __init__(self, deposits: dict[int, list[str]], pruned_below: int) -> None:
        super().__init__(deposits)
        self.pruned_below = pruned_below

    def logs_at(self, block_hash: str) -> list:
        height = next(n for n, h in self.hashes.items() if h == block_hash)
        if height < self.pruned_below:
            self.calls.append(height)
            return []  # {"result": []}, as reth PR 21122 recorded
        return super().logs_at(block_hash)


def test_an_empty_answer_from_pruned_receipts_is_refused(indexer_class: Any) -> None:
    """Review round 17, finding 1: a lagging indexer on a full node that
    answers [] for pruned blocks must stop, not credit nothing and move on."""
    node = PrunedChain({120: ["0xold"], 300: ["0xnew"]}, pruned_below=200)
    indexer = indexer_class(settled_through=100)
    with pytest.raises(LookupError, match="pruned"):
        settle(indexer, 300, node, receipts_from=200)
    assert indexer.settled_through == 100 and indexer.credited == set()
    assert node.calls == []  # refused before asking
    # The same walk without the horizon is the bug: the deposit at 120 is lost.
    blind = indexer_class(settled_through=100)
    assert settle(blind, 300, node) == [("0xnew", 0)]
    # An archive node (horizon 0) backfills the range, then the full node resumes.
    assert settle(indexer, 199, Chain({120: ["0xold"]})) == [("0xold", 0)]
    assert settle(indexer, 300, node, receipts_from=200) == [("0xnew", 0)]


def test_a_pruned_history_error_stops_the_walk(indexer_class: Any) -> None:
    """Geth's 4444 "pruned history unavailable", and reth after PR 27002,
    reach settle as an exception: the watermark stays before that block."""
    node = Chain({150: ["0xa"], 160: ["0xb"]})

    def erroring(block_hash: str) -> list:
        if block_hash == "0xb160":
            raise RuntimeError("4444: pruned history unavailable")
        return node.logs_at(block_hash)

    indexer = indexer_class(settled_through=100)
    with pytest.raises(RuntimeError, match="4444"):
        indexer.settle(200, node.block_hash, erroring, 0)
    assert indexer.settled_through == 159 and indexer.credited == {("0xa", 0)}


def test_a_batch_deposit_credits_every_log(indexer_class: Any) -> None:
    """One transaction can emit several Deposit events (batchers, routers);
    credits are keyed per log, not per transaction."""
    node = Chain({100: ["0xbatch", "0xbatch"]})
    indexer = indexer_class(settled_through=99)
    assert settle(indexer, 100, node) == [("0xbatch", 0), ("0xbatch", 1)]


def test_retractions_only_change_the_pending_view(indexer_class: Any) -> None:
    indexer = indexer_class(settled_through=99)
    indexer.apply(log("0xaa", "0xb100", 100))
    indexer.apply(log("0xaa", "0xb100", 100, removed=True))
    assert indexer.pending == {} and indexer.credited == set()


def checkpoint_block(number: int, block_hash: str) -> dict:
    """GET /eth/v2/beacon/blocks/{root} of a Fulu checkpoint, trimmed."""
    payload = {"block_number": str(number), "block_hash": block_hash}
    return {
        "version": "fulu",
        "execution_optimistic": False,
        "finalized": True,
        "data": {"message": {"slot": "12345", "body": {"execution_payload": payload}}},
    }


def test_the_settle_height_is_the_accepted_checkpoints_execution_block(
    site: Site,
) -> None:
    """Review round 10, finding 4: the indexer settles up to the execution
    block inside the checkpoint the multi-client check accepted, not to one
    node's `finalized` tag, and only if its own node agrees on that block."""
    namespace, _ = run(block(site, "indexer"))
    finalized_height = namespace["finalized_height"]
    node = Chain({150: ["0xmid"], 250: ["0xlater"]})
    height = finalized_height(checkpoint_block(200, "0xB200"), node.block_hash)
    assert height == 200
    indexer = namespace["DepositIndexer"](settled_through=100)
    assert indexer.settle(height, node.block_hash, node.logs_at, 0) == [("0xmid", 0)]
    with pytest.raises(ValueError, match="not the finalized one"):
        finalized_height(checkpoint_block(300, "0xother"), node.block_hash)
    assert indexer.settled_through == 200  # nothing past the accepted block


# -- Finality stalls ----------------------------------------------------------------


GENESIS = 1606824023  # mainnet, as in go-ethereum's beacon/params/networks.go


def checkpoints(
    finalized_epoch: int, optimistic: bool = False, root: str = "0x" + "ab" * 32
) -> dict:
    """A reply shaped like the beacon API's getStateFinalityCheckpoints:
    uint64 values are decimal strings."""

    def checkpoint(epoch: int) -> dict:
        return {"epoch": str(epoch), "root": root}

    return {
        "execution_optimistic": optimistic,
        "finalized": False,
        "data": {
            "previous_justified": checkpoint(finalized_epoch),
            "current_justified": checkpoint(finalized_epoch + 1),
            "finalized": checkpoint(finalized_epoch),
        },
    }


def spec_is_in_inactivity_leak(current_epoch: int, finalized_epoch: int) -> bool:
    """consensus-specs phase 0: get_finality_delay(state) =
    get_previous_epoch(state) - finalized_checkpoint.epoch, and the leak is
    on while it exceeds MIN_EPOCHS_TO_INACTIVITY_PENALTY (4)."""
    return (current_epoch - 1) - finalized_epoch > 4


def clock_at(epoch: int, slot_in_epoch: int = 17) -> float:
    return GENESIS + (epoch * 32 + slot_in_epoch) * 12 + 5.5


MAIN_ROOT = "0x" + "ab" * 32  # the default root of checkpoints()
NEXT_ROOT = "0x" + "ef" * 32  # a later checkpoint on the same chain
OTHER_ROOT = "0x" + "cd" * 32  # a checkpoint on a minority fork
CHAIN_OF = {MAIN_ROOT: "main", NEXT_ROOT: "main", OTHER_ROOT: "minority"}


def fake_canonical(nodes: dict, unknown: frozenset = frozenset()):
    """GET /eth/v1/beacon/headers/{root} on each node: a node holds the
    blocks of the chain its own finalized checkpoint is on; None is a 404."""

    def canonical(name: str, root: str) -> bool | None:
        if (name, root) in unknown:
            return None
        own = nodes[name][1]["data"]["finalized"]["root"]
        return CHAIN_OF[root] == CHAIN_OF[own]

    return canonical


@pytest.fixture
def finality(site: Site) -> dict[str, Any]:
    namespace, _ = run(block(site, "finality"))
    raw = namespace["finality_status"]

    def status(now: float, nodes: dict, *args: Any) -> str:
        return raw(now, nodes, fake_canonical(nodes), *args)

    namespace["finality_status_raw"] = raw
    namespace["finality_status"] = status
    return namespace


def at_head(
    now: float, finality: dict[str, Any], finalized_epoch: int, optimistic: bool = False
):
    """One beacon node that follows the head: (head slot, checkpoints reply)."""
    return (finality["clock_slot"](now), checkpoints(finalized_epoch, optimistic))


def test_finality_status_follows_the_spec(finality: dict[str, Any]) -> None:
    status = finality["finality_status"]
    assert finality["SLOTS_PER_EPOCH"] == 32
    assert finality["MIN_EPOCHS_TO_INACTIVITY_PENALTY"] == 4
    assert finality["slot_ms"](finality["MAINNET_SPEC"]) == 12_000
    assert finality["MAINNET_GENESIS_TIME"] == GENESIS
    current = 300_000
    now = clock_at(current)
    assert finality["clock_slot"](now) == current * 32 + 17

    def both(behind: int) -> str:  # two clients at the head that agree
        epoch = current - behind
        return status(
            now,
            {
                "lighthouse": at_head(now, finality, epoch),
                "teku": at_head(now, finality, epoch),
            },
        )

    assert both(2) == "ok"  # healthy
    assert both(3) == "ok"  # one late epoch
    assert both(4).startswith("warn")
    for behind in range(2, 40):
        result = both(behind)
        leaking = spec_is_in_inactivity_leak(current, current - behind)
        assert result.startswith("page") == leaking, behind
        assert ("network stall" in result) == leaking, behind
        assert str(behind) in result or result == "ok"
    # 12 May 2023: nine epochs without finality is a page, not a warning.
    assert both(2 + 9).startswith("page: network stall")


def test_the_slot_length_comes_from_the_node_config(finality: dict[str, Any]) -> None:
    """Review round 5: consensus-specs replaced SECONDS_PER_SLOT with
    SLOT_DURATION_MS (#4926). The block reads either, as GET
    /eth/v1/config/spec returns them (quoted integers), and the clock follows."""
    slot_ms, clock_slot = finality["slot_ms"], finality["clock_slot"]
    assert slot_ms({"SLOT_DURATION_MS": "12000"}) == 12_000
    assert slot_ms({"SECONDS_PER_SLOT": "12"}) == 12_000
    assert slot_ms({"SLOT_DURATION_MS": "6000", "SECONDS_PER_SLOT": "12"}) == 6_000
    now = GENESIS + 120.5
    assert clock_slot(now, GENESIS) == 10
    assert clock_slot(now, GENESIS, {"SECONDS_PER_SLOT": "12"}) == 10
    assert clock_slot(now, GENESIS, {"SLOT_DURATION_MS": "6000"}) == 20
    # head_status and finality_status use the spec they are given.
    assert (
        finality["head_status"](now, 10, GENESIS, {"SLOT_DURATION_MS": "12000"}) == "ok"
    )
    assert finality["head_status"](
        now, 10, GENESIS, {"SLOT_DURATION_MS": "6000"}
    ).startswith("warn")


def test_a_stuck_node_is_not_reported_as_a_stall(finality: dict[str, Any]) -> None:
    """Review round 3: a node whose head froze an hour ago reports an
    hour-old finalized epoch, and the essay's previous version, fed that one
    node, paged "inactivity leak". Compared with nodes at the head, it is a
    node problem."""
    status = finality["finality_status"]
    stuck_at = 300_000
    now = clock_at(stuck_at + 10)  # about an hour later
    frozen = (stuck_at * 32 + 17, checkpoints(stuck_at - 2))
    healthy = {
        "teku": at_head(now, finality, stuck_at + 8),
        "nimbus": at_head(now, finality, stuck_at + 8),
    }
    result = status(now, {"lighthouse": frozen, **healthy})
    assert result == "warn: node stuck: lighthouse; finality ok on the others"
    # With only one other node there is no second opinion: node trouble,
    # never a network stall.
    result = status(now, {"lighthouse": frozen, "teku": healthy["teku"]})
    assert result.startswith("page: node trouble") and "stuck: lighthouse" in result
    assert "stall" not in result and "leak" not in result
    # The stuck node's own head tells the same story.
    assert finality["head_status"](now, frozen[0]).startswith("page")


def test_nodes_that_disagree_are_not_a_stall(finality: dict[str, Any]) -> None:
    """A node at the head whose finality is stale (a client bug) disagrees
    with the others: page, but as a disagreement, not as a network stall."""
    status = finality["finality_status"]
    now = clock_at(300_000)
    result = status(
        now,
        {
            "prysm": at_head(now, finality, 300_000 - 12),
            "teku": at_head(now, finality, 300_000 - 2),
        },
    )
    assert result.startswith("page: nodes disagree")
    assert "stall" not in result


def test_a_real_stall_needs_every_node_at_the_head_to_agree(
    finality: dict[str, Any],
) -> None:
    status = finality["finality_status"]
    now = clock_at(300_000)
    nodes = {
        name: at_head(now, finality, 300_000 - 11)
        for name in ("lighthouse", "teku", "nimbus")
    }
    assert status(now, nodes) == (
        "page: network stall, inactivity leak; finalized 11 epochs behind"
    )


def test_no_fresh_head_anywhere_is_its_own_page(finality: dict[str, Any]) -> None:
    status = finality["finality_status"]
    now = clock_at(300_000)
    old = finality["clock_slot"](now) - 40
    result = status(
        now, {"a": (old, checkpoints(299_990)), "b": (old, checkpoints(299_990))}
    )
    assert result.startswith("page: no node has a block from the last 40 slots")


def test_head_lag_is_its_own_signal(finality: dict[str, Any]) -> None:
    head = finality["head_status"]
    now = clock_at(300_000)
    slot = finality["clock_slot"](now)
    assert head(now, slot) == "ok"
    assert head(now, slot - 2) == "ok"  # a missed slot or two is normal
    assert head(now, slot - 5).startswith("warn")
    assert head(now, slot - 33).startswith("page")


def test_an_optimistic_reply_is_unknown_not_ok(finality: dict[str, Any]) -> None:
    status = finality["finality_status"]
    now = clock_at(300_000)
    healthy_looking = at_head(now, finality, 300_000 - 2, optimistic=True)
    result = status(
        now, {"a": healthy_looking, "b": at_head(now, finality, 300_000 - 2)}
    )
    assert result.startswith("page: node trouble, finality unknown")
    # An optimistic node that looks like a stall does not make one either.
    stalled_looking = at_head(now, finality, 300_000 - 20, optimistic=True)
    result = status(
        now,
        {
            "a": stalled_looking,
            "b": at_head(now, finality, 300_000 - 2),
            "c": at_head(now, finality, 300_000 - 2),
        },
    )
    assert result == "ok"


def test_nodes_that_finalized_different_roots_are_a_fork(
    finality: dict[str, Any],
) -> None:
    """Review round 4: the epoch-only check said "ok" for two nodes that
    agree on the finalized epoch but finalized different blocks, the
    wrong-chain failure of a supermajority client bug."""
    status = finality["finality_status"]
    now = clock_at(300_000)
    slot = finality["clock_slot"](now)
    epoch = 300_000 - 2
    split = {
        "prysm": (slot, checkpoints(epoch, root=OTHER_ROOT)),
        "teku": at_head(now, finality, epoch),
    }
    assert status(now, split) == (
        f"page: fork: nodes finalized different roots at epoch {epoch}; stop crediting"
    )
    # One of three on a minority fork is still a fork, not a majority vote.
    split["nimbus"] = at_head(now, finality, epoch)
    assert status(now, split).startswith("page: fork")
    # So is a stuck node whose finalized checkpoint contradicts the others'.
    frozen = (slot - 20, checkpoints(epoch, root=OTHER_ROOT))
    result = status(
        now,
        {
            "lodestar": frozen,
            "teku": at_head(now, finality, epoch),
            "nimbus": at_head(now, finality, epoch),
        },
    )
    assert result.startswith("page: fork")
    # Same epoch, same root: healthy.
    same = {
        "prysm": at_head(now, finality, epoch),
        "teku": at_head(now, finality, epoch),
    }
    assert status(now, same) == "ok"


def test_different_roots_at_different_epochs_are_not_a_fork(
    finality: dict[str, Any],
) -> None:
    """At an epoch boundary one node may have finalized the next checkpoint
    already: different epochs carry different roots, and that is normal
    while the later root is on the other node's chain."""
    status = finality["finality_status"]
    now = clock_at(300_000)
    slot = finality["clock_slot"](now)
    nodes = {
        "prysm": (slot, checkpoints(300_000 - 2, root=NEXT_ROOT)),
        "teku": at_head(now, finality, 300_000 - 3),
    }
    assert status(now, nodes) == "ok"
    # An optimistic reply's root is not evidence of a fork either.
    nodes = {
        "prysm": (slot, checkpoints(300_000 - 2, optimistic=True, root=OTHER_ROOT)),
        "teku": at_head(now, finality, 300_000 - 2),
        "nimbus": at_head(now, finality, 300_000 - 2),
    }
    assert status(now, nodes) == "ok"


def test_a_minority_fork_that_finalized_ahead_is_a_fork(
    finality: dict[str, Any],
) -> None:
    """Review round 9: a node on a minority fork that finalized epoch N+1
    while the healthy nodes sit at N reported no epoch in common with them,
    and the same-epoch comparison said "ok"."""
    status = finality["finality_status"]
    now = clock_at(300_000)
    slot = finality["clock_slot"](now)
    nodes = {
        "prysm": (slot, checkpoints(300_000 - 2, root=OTHER_ROOT)),
        "teku": at_head(now, finality, 300_000 - 3),
    }
    assert status(now, nodes) == (
        "page: fork: prysm's finalized epoch 299998 is not on teku's chain;"
        " stop crediting"
    )
    # A node that never saw the block (404) is no confirmation either.
    raw = finality["finality_status_raw"]
    same_chain = {
        "prysm": (slot, checkpoints(300_000 - 2, root=NEXT_ROOT)),
        "teku": at_head(now, finality, 300_000 - 3),
    }
    unknown = frozenset({("teku", NEXT_ROOT)})
    result = raw(now, same_chain, fake_canonical(same_chain, unknown))
    assert result.startswith("page: fork: prysm's finalized epoch 299998")
    # A stuck node is not asked: it may simply not have the block yet.
    asked: list = []

    def recording(name: str, root: str) -> bool | None:
        asked.append(name)
        return True

    stuck = {
        "lodestar": (slot - 20, checkpoints(300_000 - 3)),
        "teku": at_head(now, finality, 300_000 - 2),
        "nimbus": at_head(now, finality, 300_000 - 2),
    }
    raw(now, stuck, recording)
    assert asked and "lodestar" not in asked


def test_a_backfilling_node_is_no_verdict_either_way(finality: dict[str, Any]) -> None:
    """Review round 9, finding 5: a node checkpoint-synced at epoch N holds
    no blocks before N until it has backfilled, so a 404 for a peer's older
    finalized root says nothing: warn, do not page "stop crediting". A 404
    for a root later than the node's own finalized checkpoint still pages,
    and so does "known but not canonical" at any epoch."""
    raw = finality["finality_status_raw"]
    now = clock_at(300_000)
    slot = finality["clock_slot"](now)
    nodes = {
        "prysm": (slot, checkpoints(300_000 - 3)),  # lags one epoch, MAIN_ROOT
        "teku": (slot, checkpoints(300_000 - 2, root=NEXT_ROOT)),  # fresh anchor
    }
    backfilling = frozenset({("teku", MAIN_ROOT)})
    result = raw(now, nodes, fake_canonical(nodes, backfilling))
    assert result.startswith("warn: cannot judge")
    assert "teku lacks prysm's root" in result
    assert "fork" not in result and "stop crediting" not in result
    # Once teku has the block and calls it canonical, all is well ...
    assert raw(now, nodes, fake_canonical(nodes)) == "ok"

    # ... and a known block that is not canonical is a fork at any epoch.
    def not_canonical(name: str, root: str) -> bool | None:
        return name != "teku"

    assert raw(now, nodes, not_canonical).startswith(
        "page: fork: prysm's finalized epoch 299997 is not on teku's chain"
    )
    # A real stall still outranks the warning.
    stalled = {
        "prysm": (slot, checkpoints(300_000 - 12)),
        "teku": (slot, checkpoints(300_000 - 11, root=NEXT_ROOT)),
    }
    result = raw(now, stalled, fake_canonical(stalled, backfilling))
    assert result.startswith("page: network stall")


# -- Native ETH from traces --------------------------------------------------------

OURS = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"  # the second Hardhat account
OTHER = "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc"
SAFE = "0x1111111111111111111111111111111111111111"


def frame(
    kind: str,
    to: str,
    value: int = 0,
    calls: list | None = None,
    error: str | None = None,
) -> dict:
    """A callTracer frame, shaped as go-ethereum's eth/tracers/native/call.go
    emits it: value as hex, omitted when empty; error only where the frame
    itself failed."""
    out: dict[str, Any] = {
        "type": kind,
        "from": SAFE,
        "to": to,
        "gas": "0x0",
        "gasUsed": "0x0",
        "input": "0x",
    }
    if value:
        out["value"] = hex(value)
    if calls:
        out["calls"] = calls
    if error:
        out["error"] = error
    return out


@pytest.fixture
def native_credits(site: Site) -> Any:
    namespace, _ = run(block(site, "native"))
    return namespace["native_credits"]


def test_native_credits_finds_eth_a_contract_sends(native_credits: Any) -> None:
    """A Safe paying out by an internal CALL emits no log; the trace has it."""
    trace = [
        {"txHash": "0xt1", "result": frame("CALL", OURS, 5)},  # a plain transfer
        {
            "txHash": "0xt2",
            "result": frame(
                "CALL",
                SAFE,
                0,
                calls=[
                    frame(
                        "DELEGATECALL",
                        "0x2222222222222222222222222222222222222222",
                        0,
                        calls=[
                            frame("CALL", OTHER, 1),
                            frame("CALL", OURS.upper().replace("0X", "0x"), 7),
                        ],
                    ),
                ],
            ),
        },
        {"txHash": "0xt3", "result": frame("SELFDESTRUCT", OURS, 3)},
    ]
    assert native_credits(trace, {OURS}) == [
        ("0xt1", (), OURS, 5),
        ("0xt2", (0, 1), OURS, 7),
        ("0xt3", (), OURS, 3),
    ]


def test_eth_inside_a_reverted_frame_is_not_credited(native_credits: Any) -> None:
    """callTracer marks only the frame that failed; its children, which
    succeeded before the revert undid them, carry no error."""
    trace = [
        {
            "txHash": "0xt1",
            "result": frame(
                "CALL",
                SAFE,
                0,
                calls=[
                    frame(
                        "CALL",
                        OTHER,
                        0,
                        error="execution reverted",
                        calls=[
                            frame("CALL", OURS, 9),
                        ],
                    ),
                    frame("CALL", OURS, 2),
                ],
            ),
        },
        {"txHash": "0xt2", "result": frame("CALL", OURS, 4, error="out of gas")},
    ]
    assert native_credits(trace, {OURS}) == [("0xt1", (1,), OURS, 2)]


def test_a_delegatecall_frame_moves_no_eth(native_credits: Any) -> None:
    """go-ethereum's DelegateCall hands the tracer the caller's value; the
    transfer was the outer CALL, counted once."""
    trace = [
        {
            "txHash": "0xt1",
            "result": frame(
                "CALL",
                OURS,
                6,
                calls=[
                    frame("DELEGATECALL", OURS, 6),
                ],
            ),
        }
    ]
    assert native_credits(trace, {OURS}) == [("0xt1", (), OURS, 6)]


def test_checksummed_deposit_addresses_are_matched(native_credits: Any) -> None:
    """Review round 6: ledgers store EIP-55 case; callTracer's `to` is
    compared in lower case, so `ours` must be normalised too."""
    checksummed = Account.from_key(
        "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
    ).address
    assert checksummed.lower() == OURS and checksummed != OURS
    trace = [{"txHash": "0xt1", "result": frame("CALL", OURS, 5)}]
    assert native_credits(trace, {checksummed}) == [("0xt1", (), OURS, 5)]


def test_value_sent_with_create_is_credited(native_credits: Any) -> None:
    """Review round 6: CREATE and CREATE2 carry value to the new address
    (EIP-7708 counts them as transfers); a failed one has no `to`
    (go-ethereum call.go nulls it) and an error, and credits nothing."""
    failed = frame("CREATE2", OURS, 8, error="execution reverted")
    failed["to"] = None
    trace = [
        {
            "txHash": "0xt1",
            "result": frame(
                "CALL",
                SAFE,
                0,
                calls=[frame("CREATE2", OURS, 3), frame("CREATE", OURS, 4), failed],
            ),
        }
    ]
    assert native_credits(trace, {OURS}) == [
        ("0xt1", (0,), OURS, 3),
        ("0xt1", (1,), OURS, 4),
    ]


def test_a_failed_trace_stops_the_walk(native_credits: Any) -> None:
    trace = [
        {"txHash": "0xt1", "result": frame("CALL", OURS, 1)},
        {"txHash": "0xt2", "error": "execution timeout"},
    ]
    with pytest.raises(ValueError, match="0xt2"):
        native_credits(trace, {OURS})


def test_authorized_keys_line_uses_options_sshd_understands(site: Site) -> None:
    line = block(site, "authorized-keys").strip()
    options, key_type, blob, comment = line.split(" ", 3)
    assert key_type == "ssh-ed25519" and blob.startswith("AAAAC3NzaC1lZDI1NTE5")
    assert comment == "ci-deploy@example"
    parts = re.findall(r'([a-z-]+)(?:="([^"]*)")?', options)
    found = {name: value for name, value in parts}
    assert set(found) == {"expiry-time", "from", "restrict"}
    # sshd(8): expiry-time is YYYYMMDD[Z] or YYYYMMDDHHMM[SS][Z].
    assert re.fullmatch(r"\d{8}(\d{4}(\d{2})?)?Z?", found["expiry-time"])
    assert datetime.strptime(found["expiry-time"].rstrip("Z")[:8], "%Y%m%d")
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+/\d+", found["from"])


#: OpenSSH's own test key, regress/unittests/sshkey/testdata/ed25519_1.pub,
#: and its published fingerprint (ed25519_1.fp).
OPENSSH_TEST_KEY_FP = "SHA256:L3k/oJubblSY0lB9Ulsl7emDMnRPKm/8udf2ccwk560"


def test_authorized_keys_line_is_a_whole_key_ssh_keygen_reads(
    site: Site, tmp_path: Path
) -> None:
    """ssh-keygen parses the line, options and all, as an authorized_keys
    entry, and the key is OpenSSH's published ed25519 test key. A truncated
    or mistyped blob fails here. (openssh-client must be installed: the test
    fails, never skips, without it.)"""
    path = tmp_path / "authorized_keys"
    path.write_text(block(site, "authorized-keys").strip() + "\n", encoding="ascii")
    result = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    bits, fingerprint, comment, kind = result.stdout.split()
    assert (bits, fingerprint, kind) == ("256", OPENSSH_TEST_KEY_FP, "(ED25519)")
    assert comment == "ci-deploy@example"


def test_the_queue_watch_backstop_pages_older_upgrade_calls_on_unpinned_targets(
    site: Site,
) -> None:
    """Review round 12, QueueWatch gap: OpenZeppelin 4's ProxyAdmin and UUPS
    calls and Safe's setModuleGuard page even when aimed at a contract the
    baseline does not pin; a routine call to the same target does not."""
    queue, _ = run(block(site, "queue-watch"))
    baseline = json.loads(block(site, "proxy-baseline"))
    token = json.loads(block(site, "eth-call"))["params"][0]["to"]
    timelock = baseline[baseline[token]["EIP-1967 admin"]]["Owner"]
    delay = baseline[timelock]["Timelock delay"]
    unpinned = "0x2279B7A0a67DB372996a5FaB50D91eAA73d2eBe6"
    assert unpinned.lower() not in {c.lower() for c in baseline}
    new = "0xbDd077f651EBe7f7b3cE16fe5F2b025BE2969516"
    cases = {
        "upgrade(address,address)": (["address", "address"], [unpinned, new]),
        "changeProxyAdmin(address,address)": (["address", "address"], [unpinned, new]),
        "upgradeTo(address)": (["address"], [new]),
        "setModuleGuard(address)": (["address"], [new]),
    }
    known = {  # the selectors every block explorer shows for these calls
        "upgrade(address,address)": "0x99a88ec4",
        "changeProxyAdmin(address,address)": "0x7eff275e",
        "upgradeTo(address)": "0x3659cfe6",
        "setModuleGuard(address)": "0xe068df37",
    }
    for name, selector in known.items():
        assert queue["SENSITIVE"][selector] == name
    for index, (name, (types, values)) in enumerate(cases.items()):
        watch = queue["QueueWatch"](baseline)
        operation = "0x" + f"{index + 1:02x}" * 32
        data = calldata(name, types, values)
        watch.apply(
            timelock_log(timelock, "CALL_SCHEDULED", operation, unpinned, data, delay),
            0,
        )
        ((paged, page),) = watch.pages()
        assert paged == operation and page["calls"] == [(unpinned.lower(), name)]
    routine = queue["QueueWatch"](baseline)
    pay = calldata("transfer(address,uint256)", ["address", "uint256"], [new, 1])
    routine.apply(
        timelock_log(
            timelock, "CALL_SCHEDULED", "0x" + "ee" * 32, unpinned, pay, delay
        ),
        0,
    )
    assert routine.pages() == []


# -- Round 14 ------------------------------------------------------------------

ERC1271_MAGIC = bytes.fromhex("1626ba7e")  # isValidSignature's success value
ERC6492_SUFFIX = bytes.fromhex("6492" * 16)  # ERC-6492 magicBytes


def erc6492_order(address: str, text: str, signature: bytes, code_at, is_valid) -> bool:
    """ERC-6492's mandatory order: magic suffix, then ERC-1271 wherever the
    address has code, and ecrecover only where it has none."""
    digest = encode_defunct(text=text)
    if signature.endswith(ERC6492_SUFFIX):
        return is_valid(address, digest, signature) == ERC1271_MAGIC
    if code_at(address):
        return is_valid(address, digest, signature) == ERC1271_MAGIC
    return Account.recover_message(digest, signature=signature) == address


def test_the_sign_in_order_departs_from_erc6492_only_for_delegated_accounts(
    site: Site,
) -> None:
    """Review round 13, finding 3: the essay recovers first and accepts only a
    match with the claimed address. On a 7702 account whose delegate's
    ERC-1271 says no, ERC-6492's order refuses the key's own signature and
    the essay's accepts it; on a contract wallet whose owner key signs, the
    recovered key is not the wallet, so the essay falls through to ERC-1271
    and both orders agree."""
    verify = run(block(site, "siwe-verify"))[0]["verify_login"]
    text = block(site, "siwe")
    now = datetime.fromisoformat("2026-11-24T09:31:00+00:00")
    host = "deploy.example.com"

    def sign(message: str) -> bytes:
        return bytes(
            Account.sign_message(encode_defunct(text=message), TEST_KEY).signature
        )

    def essay_order(
        address: str, message: str, signature: bytes, code_at, is_valid
    ) -> bool:
        try:  # step one is the essay's own code: recover and compare
            return (
                verify(message, signature, host, 1, SESSION, outstanding(), now)
                == address
            )
        except ValueError as refused:
            assert "signed by another key" in str(refused)
        return (
            is_valid(address, encode_defunct(text=message), signature) == ERC1271_MAGIC
        )

    delegate = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    code = {TEST_ADDRESS: bytes.fromhex("ef0100" + delegate[2:])}  # EIP-7702 designator

    def refuses(address: str, digest: Any, signature: bytes) -> bytes:
        return b"\xff\xff\xff\xff"  # the delegate's ERC-1271 knows nothing of the key

    signature = sign(text)
    assert essay_order(TEST_ADDRESS, text, signature, code.get, refuses)
    assert not erc6492_order(TEST_ADDRESS, text, signature, code.get, refuses)
    assert erc6492_order(
        TEST_ADDRESS, text, signature, {}.get, refuses
    )  # no code: agree

    # A contract wallet owned by the same key: the signature recovers to the
    # owner, not to the wallet the message claims, so recovery accepts
    # nothing and both orders ask the wallet.
    wallet = "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"
    as_wallet = text.replace(TEST_ADDRESS, wallet)
    wallet_signature = sign(as_wallet)
    wallet_code = {wallet: b"\x60\x80"}

    def owner_check(address: str, digest: Any, sig: bytes) -> bytes:
        owner = Account.recover_message(digest, signature=sig)
        return (
            ERC1271_MAGIC if address == wallet and owner == TEST_ADDRESS else b"\0" * 4
        )

    for order in (essay_order, erc6492_order):
        assert order(wallet, as_wallet, wallet_signature, wallet_code.get, owner_check)
        assert not order(wallet, as_wallet, wallet_signature, wallet_code.get, refuses)
    prose = " ".join(page_text(site).split())
    # Review round 16, finding 7: the reason for the departure sits in the
    # body, next to the rule it breaks.
    assert "ERC-6492 puts recovery last" in prose
    assert "this order breaks it on purpose" in prose
    assert (
        "the key can replace the delegate at will" in prose
        and "protects nothing against the key" in prose
    )
    assert (
        "safe only because acceptance needs a match with the claimed address" in prose
    )


def test_a_minority_execution_client_is_the_canary_for_a_majority_bug(
    finality: dict[str, Any],
) -> None:
    """Review round 13, finding 1: two beacon nodes of different consensus
    clients on one execution client agree on its bug (Holesky: Geth,
    Nethermind and Besu accepted the invalid block), and the check says
    "ok"; a node on a minority execution client finalizes the other root,
    and only then does it page as a fork."""
    status = finality["finality_status"]
    now = clock_at(300_000)
    slot = finality["clock_slot"](now)
    epoch = 300_000 - 2
    same_el = {
        "lighthouse+geth": (slot, checkpoints(epoch, root=OTHER_ROOT)),
        "teku+geth": (slot, checkpoints(epoch, root=OTHER_ROOT)),
    }
    assert status(now, same_el) == "ok"  # blind to the bug they share
    with_canary = {**same_el, "nimbus+reth": at_head(now, finality, epoch)}
    assert status(now, with_canary).startswith("page: fork")


def test_the_finality_docstring_asks_for_both_layers(site: Site) -> None:
    doc = " ".join(run(block(site, "finality"))[0]["finality_status"].__doc__.split())
    assert "minority execution client" in doc


def finality_delay_slots(inclusion_slot: int, slots_per_epoch: int = 32) -> int:
    """Slots from inclusion until the block is final, with full
    participation: checkpoint E is justified as epoch E ends and finalized as
    E+1 ends (phase 0, weigh_justification_and_finalization, the "1st/2nd
    most recent epochs" rule); a block waits for the first checkpoint at or
    after it."""
    checkpoint = -(-inclusion_slot // slots_per_epoch)  # ceil
    return (checkpoint + 2) * slots_per_epoch - inclusion_slot


def test_the_finality_window_follows_from_the_slot_length(site: Site) -> None:
    """Review round 13, finding 6: 64 to 95 slots, so 12.8 to 19 minutes at
    12,000 ms, and half that if a fork halved the slot."""
    namespace = run(block(site, "finality"))[0]
    delays = [finality_delay_slots(32 * 1000 + s) for s in range(32)]
    assert (min(delays), max(delays)) == (64, 95)
    ms = namespace["slot_ms"](namespace["MAINNET_SPEC"])
    assert (min(delays) * ms / 60_000, max(delays) * ms / 60_000) == (12.8, 19.0)
    half = namespace["slot_ms"]({"SLOT_DURATION_MS": "6000"})
    assert max(delays) * half / 60_000 == 9.5
    text = " ".join(page_text(site).split())
    assert "final 64 to 95 slots after inclusion" in text
    assert "12.8 to 19 minutes at today's SLOT_DURATION_MS of 12,000" in text
    # The deposit SLO's margin rests on the worst case.
    assert "about 19 minutes at worst" in text and "within 30 minutes" in text


def test_empty_boundary_slots_move_the_checkpoint_not_the_window(site: Site) -> None:
    """Review round 18, finding 6: an epoch's checkpoint is the block root at
    its start slot, which process_slot fills with the latest block's root when
    that slot is empty. Simulated on a chain with empty slots, including
    boundary slots: each block is final when the first checkpoint it is, or
    is an ancestor of, is finalized (epoch E's, as E+1 ends), and the wait
    stays 64 to 95 slots, so the prose's window needs no qualifier."""
    per_epoch = 32
    empty = {32 * 11, 32 * 12, 32 * 12 - 1, 32 * 13 + 5, 32 * 14}  # boundaries too
    blocks = [slot for slot in range(32 * 10, 32 * 16) if slot not in empty]

    def checkpoint(epoch: int) -> int:
        """get_block_root(epoch): the slot of the block at or before its start."""
        return max(slot for slot in blocks if slot <= epoch * per_epoch)

    assert checkpoint(11) == 32 * 11 - 1  # the first slot is empty: the previous
    assert checkpoint(12) == 32 * 12 - 2  # epoch's latest block stands in
    waits = []
    for slot in blocks[:-96]:
        epoch = next(e for e in range(10, 20) if checkpoint(e) >= slot)
        finalized_at = (epoch + 2) * per_epoch  # checkpoint E final as E+1 ends
        waits.append(finalized_at - slot)
        assert finalized_at - slot == finality_delay_slots(slot)
    assert min(waits) == 64 and max(waits) == 95
    text = " ".join(page_text(site).split())
    assert "if that slot is empty, the latest block before it" in text
    assert "its first block is a checkpoint" not in text


def test_the_execution_restore_time_follows_from_size_and_rate(site: Site) -> None:
    """Review round 18, finding 5: "minutes" held only for checkpoint sync.
    The execution half is the table's smallest data directory at EBS's
    provisioned initialization rates, and the prose's range must be what
    that arithmetic gives."""
    text = " ".join(page_text(site).split())
    assert "rates of 100 to 300 MiB/s" in text
    assert "1.2 TB takes one to three hours" in text
    assert "At least 1.2 TB" in text  # the Reth full node row it rests on
    hours = [1.2e12 / (rate * 2**20) / 3600 for rate in (300, 100)]
    assert 1 <= hours[0] < 1.5 and 2.5 < hours[1] <= 3.5  # about 1.1 and 3.2
    assert "minutes, not a full sync's hours or days" in text  # beacon only


def test_the_blob_cancel_signs_in_the_wrapper_a_post_fusaka_pool_takes(
    bump: dict[str, Any],
) -> None:
    """Review round 13, finding 8: since Osaka Geth's pool wants sidecar
    version 1 with 128 cell proofs per blob (core/txpool/validation.go,
    kzg4844.CellProofsPerBlob). The template, signed as its docstring says,
    comes out in that wrapper: [tx, 1, blobs, commitments, cell proofs]."""
    blob = bump["Fees"](30_000_000_000, 1_000_000_000, 5_000_000_000)
    template = bump["cancellation"](blob, TEST_ADDRESS, 7)
    wire = {k: v for k, v in template.items() if k not in ("from", "blob_count")}
    blobs = [b"\0" * 131072] * template["blob_count"]
    signed = Account.sign_transaction(
        {**wire, "chainId": 1, "gas": 21000}, TEST_KEY, blobs=blobs
    )
    raw = bytes(signed.raw_transaction)
    assert raw[0] == 3
    _tx, version, wrapped_blobs, commitments, proofs = rlp.decode(raw[1:])
    assert version == b"\x01"
    assert len(wrapped_blobs) == len(commitments) == template["blob_count"]
    assert len(proofs) == 128 * len(commitments)
    assert all(len(p) == 48 for p in proofs)


def test_the_verifier_is_as_loose_as_the_prose_admits(site: Site) -> None:
    """Review round 14, finding 4: ERC-4361's statement is
    *( reserved / unreserved / " " ), which has no double quote, and its
    URI is an RFC 3986 URI, which has no "<". The verifier's pattern takes
    both, as the prose now says; field order it still enforces."""
    namespace, _ = run(block(site, "siwe-verify"))
    pattern = namespace["SIWE"]
    text = block(site, "siwe")
    assert pattern.fullmatch(text)
    statement = "Sign in to the release console. This request costs no gas."
    loose = text.replace(statement, 'Sign in to the "release" console.')
    abnf_statement = re.compile(r"[A-Za-z0-9:/?#\[\]@!$&'()*+,;=._~ -]*")
    assert abnf_statement.fullmatch(statement)
    assert not abnf_statement.fullmatch('Sign in to the "release" console.')
    assert pattern.fullmatch(loose)  # looser than the ABNF
    assert pattern.fullmatch(text.replace("/login", "/<login>"))
    swapped = text.replace("Version: 1\nChain ID: 1", "Chain ID: 1\nVersion: 1")
    assert not pattern.fullmatch(swapped)  # but the order holds


def test_a_permit_signature_binds_the_spender_it_names() -> None:
    """Review round 14, finding 1: the ERC-2612 digest covers the spender,
    so a permit signed for one spender is no use to another; whoever submits
    it, the allowance goes to the spender named inside."""
    domain = {
        "name": "Token",
        "version": "1",
        "chainId": 1,
        "verifyingContract": "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
    }
    types = {
        "Permit": [
            {"name": "owner", "type": "address"},
            {"name": "spender", "type": "address"},
            {"name": "value", "type": "uint256"},
            {"name": "nonce", "type": "uint256"},
            {"name": "deadline", "type": "uint256"},
        ]
    }

    def permit(spender: str) -> Any:
        message = {
            "owner": TEST_ADDRESS,
            "spender": spender,
            "value": 2**256 - 1,
            "nonce": 0,
            "deadline": 2**256 - 1,  # "effectively never expire", ERC-2612
        }
        return encode_typed_data(domain, types, message)

    attacker = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    relayer = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
    signed = Account.sign_message(permit(attacker), TEST_KEY).signature
    assert Account.recover_message(permit(attacker), signature=signed) == TEST_ADDRESS
    assert Account.recover_message(permit(relayer), signature=signed) != TEST_ADDRESS


# -- The prose and the code agree ----------------------------------------------


def test_each_number_in_the_prose_is_the_codes(
    site: Site, finality: dict[str, Any], bump: dict[str, Any]
) -> None:
    """Review round 15, finding 10: one check per number the prose states,
    each tied to the constant or the behaviour of the example that uses it,
    in place of the per-round wording tests."""
    text = " ".join(page_text(site).split())
    verify, _ = run(block(site, "siwe-verify"))
    # Sign-in: the nonce's life and the device-clock skew.
    assert verify["NONCE_TTL"] == timedelta(minutes=5)
    assert "A nonce dies five minutes after issue or at first successful use" in text
    assert verify["CLOCK_SKEW"] == timedelta(minutes=2)
    assert "refuse them only when more than two minutes ahead" in text
    # Replacement floors: Geth's 10% and the blob pool's doubling.
    assert bump["PRICE_BUMP"] == 10 and "by at least 10%" in text
    assert bump["BLOB_PRICE_BUMP"] == 100 and "all three prices must double" in text
    # The leak threshold, stated two ways, is the code's.
    assert finality["MIN_EPOCHS_TO_INACTIVITY_PENALTY"] == 4
    assert (
        "more than four epochs behind the previous epoch, more than five behind the"
        " current one" in text
    )
    # The alert table's warn and page thresholds are where finality_status
    # changes its verdict (epochs behind the wall-clock epoch).
    assert "more than 3 (warn), more than 5 (page)" in text
    status = finality["finality_status"]
    epoch = 300_000
    now = clock_at(epoch)
    verdicts = {}
    for behind in range(2, 8):
        nodes = {
            "lighthouse+reth": at_head(now, finality, epoch - behind),
            "teku+geth": at_head(now, finality, epoch - behind),
        }
        verdicts[behind] = status(now, nodes).split(":")[0]
    assert verdicts == {2: "ok", 3: "ok", 4: "warn", 5: "warn", 6: "page", 7: "page"}
    # A stuck node is this many slots behind the others, in code and table.
    assert finality["STUCK_SLOTS"] == 8 and "8 slots behind the others" in text
    # The finality window and the deposit SLO that rests on it.
    delays = [finality_delay_slots(32 * 1000 + s) for s in range(32)]
    worst_minutes = max(delays) * finality["slot_ms"](finality["MAINNET_SPEC"]) / 60_000
    assert worst_minutes == 19.0 and "about 19 minutes at worst" in text
    assert "within 30 minutes of inclusion" in text and 30 - worst_minutes >= 10
    # The tracer pages well inside the full node's window of recent state.
    assert "page if the tracer falls 100 blocks behind" in text
    assert "keeps the state of its latest 128 blocks" in text and 100 < 128
    # OP Mainnet's sequencing window: 3,600 L1 blocks of 12 seconds.
    assert 3_600 * finality["slot_ms"](finality["MAINNET_SPEC"]) / 3_600_000 == 12
    assert "twelve hours on OP Mainnet" in text and "12-hour sequencing window" in text


def test_the_chapter_keeps_one_example_per_mechanism_and_the_appendix_the_rest(
    site: Site,
) -> None:
    """The density the round-14 and round-15 reviews asked for: the worked
    examples stay in the chapter, the long checks sit after the takeaways,
    and the page-now alert table is short, its other rows in the appendix."""
    import pickle

    from bs4 import BeautifulSoup
    from docutils import nodes

    tree = pickle.loads((site.doctrees / f"{DOC}.doctree").read_bytes())
    order = []
    for node in tree.findall(
        lambda n: isinstance(n, (nodes.literal_block, nodes.admonition))
    ):
        if isinstance(node, nodes.admonition):
            if "key-takeaways" in node["classes"]:
                order.append("takeaways")
            continue
        names = node["names"] or (node.parent.get("names", []) if node.parent else [])
        order += [n.removeprefix(f"{SLUG}-") for n in names]
    takeaways = order.index("takeaways")
    for kept in ("drift", "indexer", "siwe", "safe-tx"):
        assert order.index(kept) < takeaways, kept
    for moved in (
        "get-storage",
        "siwe-verify",
        "bump",
        "nonce-restart",
        "native",
        "finality",
        "proxy-baseline",
        "proxy-slots",
        "queue-watch",
    ):
        assert order.index(moved) > takeaways, moved
    assert sum(1 for name in order[:takeaways] if name != "takeaways") <= 10
    assert len(block(site, "drift").splitlines()) <= 40
    html = Path(site.html, f"{DOC}.html").read_text(encoding="utf-8")
    tables = [
        t
        for t in BeautifulSoup(html, "html.parser").find_all("table")
        if "Signal" in t.find("tr").get_text()
    ]
    assert len(tables) == 2
    assert len(tables[0].find("tbody").find_all("tr")) <= 8
    assert "Host clock offset" in tables[1].get_text()


def test_the_sizing_table_dates_every_figure(site: Site) -> None:
    """Review round 16, finding 4: each disk figure carries the block or
    month it was measured at, and its client's own page, so a reader can
    tell how stale it is; and the advice to measure your own follows it."""
    from bs4 import BeautifulSoup

    html = Path(site.html, f"{DOC}.html").read_text(encoding="utf-8")
    tables = [
        t
        for t in BeautifulSoup(html, "html.parser").find_all("table")
        if "Disk the client documents" in t.find("tr").get_text()
    ]
    assert len(tables) == 1
    rows = tables[0].find("tbody").find_all("tr")
    assert len(rows) >= 3
    previous = None
    for row in rows:
        client, disk, measured, _also = (
            " ".join(c.get_text(" ").split()) for c in row.find_all("td")
        )
        assert re.search(r"\d+(\.\d+)? TB", disk), client
        dated = re.search(r"Block [\d,]+, (\d+ )?\w+ 20\d\d", measured)
        assert dated or (measured.startswith("The same") and previous), client
        previous = measured
        assert row.find("a", href=re.compile("#")), f"{client} cites no source"
    text = " ".join(page_text(site).split())
    assert "measure each data directory's growth per day" in text


def test_the_fence_is_synchronous_only_with_a_named_standby(site: Site) -> None:
    """Review round 17, finding 3: `synchronous_commit = on` is PostgreSQL's
    default and waits only for the local flush while
    synchronous_standby_names is empty. The advice names both settings, in
    the FIRST n (...) syntax, and the lost standby that then blocks signing
    has a page of its own."""
    from bs4 import BeautifulSoup

    text = " ".join(page_text(site).split())
    assert "synchronous_standby_names" in text and "'FIRST 1 (fence_b)'" in text
    assert re.fullmatch(r"'FIRST [1-9]\d* \(\w+(, \w+)*\)'", "'FIRST 1 (fence_b)'")
    assert "With no standby named, on waits only for the local disk" in text
    html = Path(site.html, f"{DOC}.html").read_text(encoding="utf-8")
    pages = next(
        t
        for t in BeautifulSoup(html, "html.parser").find_all("table")
        if "Signal" in t.find("tr").get_text()
    )
    rows = [" ".join(r.get_text(" ").split()) for r in pages.find_all("tr")]
    assert any("lost synchronous standby" in r and "Stop signing" in r for r in rows)
