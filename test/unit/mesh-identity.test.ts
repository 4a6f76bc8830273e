// The pure rules of the mesh and VIP adapters: who a certificate names, who
// dials whom, how TLS failures are classified, what arping and ip print.
import assert from "node:assert/strict"
import { describe, test } from "node:test"
import {
  certificateNames,
  classifyTlsError,
  dials,
  identifyInbound,
  identifyOutbound,
} from "../../agent/src/adapters/mesh-identity.ts"
import { findAddress, parseArpingMacs } from "../../agent/src/adapters/vip.ts"

const members = new Set(["db1", "db2", "db3"])
const cert = (cn: string, ...dns: string[]) => ({
  subject: { CN: cn },
  subjectaltname: dns.map((d) => `DNS:${d}`).join(", "),
})

describe("mesh identity", () => {
  test("names come from the CN and the SAN DNS entries, without duplicates", () => {
    assert.deepEqual(certificateNames(cert("db1", "db1")), ["db1"])
    assert.deepEqual(certificateNames(cert("x", "db2", "y")), ["x", "db2", "y"])
    assert.deepEqual(
      certificateNames({ subject: { CN: "a" }, subjectaltname: "IP Address:10.0.0.1, DNS:b" }),
      ["a", "b"],
    )
    assert.deepEqual(certificateNames(null), [])
  })

  test("the lower name dials, so each pair has one dialler", () => {
    for (const a of members)
      for (const b of members) if (a !== b) assert.notEqual(dials(a, b), dials(b, a))
    assert.equal(dials("db1", "db2"), true)
  })

  test("inbound: a member that dials us is accepted; others are refused with a reason", () => {
    assert.deepEqual(identifyInbound(cert("db1", "db1"), "db2", members), {
      _tag: "Member",
      name: "db1",
    })
    const refused = (c: ReturnType<typeof cert>, self: string) => {
      const id = identifyInbound(c, self, members)
      return id._tag === "Refused" ? id.reason : "accepted"
    }
    assert.equal(refused(cert("intruder", "intruder"), "db2"), "not-a-member")
    assert.equal(refused(cert("db1", "db3"), "db2"), "ambiguous-certificate")
    assert.equal(refused(cert("db2", "db2"), "db2"), "self")
    assert.equal(refused(cert("db3", "db3"), "db2"), "wrong-direction")
  })

  test("outbound: the server must be exactly the member dialled", () => {
    assert.equal(identifyOutbound(cert("db2", "db2"), "db2", members)._tag, "Member")
    const reason = (c: ReturnType<typeof cert>) => {
      const id = identifyOutbound(c, "db2", members)
      return id._tag === "Refused" ? id.reason : "accepted"
    }
    assert.equal(reason(cert("db3", "db3")), "name-mismatch")
    assert.equal(reason(cert("evil", "evil")), "not-a-member")
    assert.equal(reason(cert("db2", "db3")), "ambiguous-certificate")
  })

  test("TLS failures are classified from Node's error codes", () => {
    assert.equal(
      classifyTlsError({ code: "ERR_SSL_UNSUPPORTED_PROTOCOL", message: "unsupported protocol" }),
      "tls-version",
    )
    assert.equal(
      classifyTlsError({
        code: "ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE",
        message: "peer did not return a certificate",
      }),
      "bad-certificate",
    )
    assert.equal(
      classifyTlsError({ code: "ECONNRESET", message: "socket hang up" }),
      "handshake-failed",
    )
  })
})

describe("vip parsing", () => {
  test("arping -D replies give the other holder's MAC", () => {
    const out = `ARPING 10.88.0.100 from 0.0.0.0 eth0
Unicast reply from 10.88.0.100 [06:9A:62:16:C6:03]  0.600ms
Unicast reply from 10.88.0.100 [06:9A:62:16:C6:03]  0.500ms
Sent 2 probes (2 broadcast(s))
Received 2 response(s)
`
    assert.deepEqual(parseArpingMacs(out), ["06:9a:62:16:c6:03"])
    assert.deepEqual(parseArpingMacs("Sent 2 probes\nReceived 0 response(s)\n"), [])
  })

  test("ip -j addr show: the VIP's prefix when present", () => {
    const json = JSON.stringify([
      {
        ifname: "eth0",
        addr_info: [
          { family: "inet", local: "10.88.0.11", prefixlen: 24 },
          { family: "inet", local: "10.88.0.100", prefixlen: 24 },
        ],
      },
    ])
    assert.equal(findAddress(json, "10.88.0.100"), 24)
    assert.equal(findAddress(json, "10.88.0.101"), undefined)
    assert.equal(findAddress("", "10.88.0.100"), undefined)
  })
})
