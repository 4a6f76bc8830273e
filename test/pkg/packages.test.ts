// Install tests of the .deb and the .rpm (run as root: chroot, dpkg, rpm --root).
//
// The .deb goes into a fresh Debian bookworm (debootstrap minbase, cached)
// with `apt-get install ./file.deb`, which resolves its dependencies; then
// the binary runs there, the user, directories, conffile and unit are
// checked, an upgrade to a build with a bumped version keeps a modified
// config, remove keeps config, user and state, and purge removes them.
// lintian must report nothing beyond the package's own overrides.
//
// The .rpm is inspected with rpm -qlp / --scripts / --requires, must pass
// rpmlint with the package's filters, and is installed into an `rpm --root`
// database inside a copy of the same bookworm tree, so that its scriptlets
// run (they need /bin/sh, getent, useradd). `--nodeps` because its
// dependencies (glibc, iproute, iputils, shadow-utils) are there as .debs,
// not as rpms. Upgrade and erase follow, as for the .deb.
//
// No systemd runs inside the chroot (nor as PID 1 here), so starting and
// stopping the unit is not exercised: the maintainer scripts only call
// systemctl when /run/systemd/system exists, and the tests check what they
// would call.
import assert from "node:assert/strict"
import { existsSync } from "node:fs"
import { copyFile, mkdir, readFile, rm, stat, writeFile } from "node:fs/promises"
import { basename, join } from "node:path"
import { after, before, describe, test } from "node:test"
import {
  buildPackages,
  bumpPatch,
  exec,
  freshRoot,
  groupExists,
  inRoot,
  inRootOk,
  type Packages,
  packagesUnderTest,
  passwdEntry,
  run,
  scratchDir,
} from "./helpers.ts"

const isRoot = process.getuid?.() === 0
const skip = isRoot ? false : "needs root (chroot, dpkg, rpm --root)"
const has = (tool: string): boolean =>
  ["/usr/bin", "/usr/sbin", "/bin", "/sbin"].some((d) => existsSync(join(d, tool)))

const log = (line: string): void => {
  process.stderr.write(`# pkg: ${line}\n`)
}
const timed = async <A>(what: string, f: () => Promise<A>): Promise<A> => {
  const started = Date.now()
  try {
    return await f()
  } finally {
    log(`${what}: ${((Date.now() - started) / 1000).toFixed(1)} s`)
  }
}

const CONFIG = "/etc/mha-agent/config.yaml"
// dpkg-query's output formats (their ${...} are dpkg's, not JavaScript's).
// biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query format
const STATUS_VERSION = "-f=${Status} ${Version}"
// biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query format
const STATUS = "-f=${Status}"
// biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query format
const CONFFILES = "-f=${Conffiles}"
const NODE_VERSION = "v24."

let scratch = ""
let pkgs: Packages
let bumped: Packages

before(
  async () => {
    if (!isRoot) return
    scratch = await scratchDir("build")
    pkgs = await timed("packages under test", () => packagesUnderTest(scratch, log))
    bumped = await timed(`build of the bumped version ${bumpPatch(pkgs.version)}`, () =>
      buildPackages(join(scratch, "bumped"), bumpPatch(pkgs.version)),
    )
  },
  { timeout: 20 * 60_000 },
)

after(async () => {
  if (scratch !== "") await rm(scratch, { recursive: true, force: true })
})

/** Changes the installed config the way an operator would. */
const modifyConfig = async (root: string): Promise<string> => {
  const file = join(root, CONFIG)
  const text = (await readFile(file, "utf8")).replace("level: info", "level: debug")
  const changed = `${text}# changed on this host\n`
  await writeFile(file, changed)
  return changed
}

describe("the .deb", { skip, timeout: 20 * 60_000 }, () => {
  let root = ""
  let uid = -1

  before(async () => {
    root = await timed("fresh bookworm root", () => freshRoot("deb", log))
    await mkdir(join(root, "tmp/pkg"), { recursive: true })
    for (const deb of [pkgs.deb, bumped.deb]) {
      await copyFile(deb, join(root, "tmp/pkg", basename(deb)))
    }
  })
  after(async () => {
    if (root !== "") await rm(root, { recursive: true, force: true })
  })

  test("its metadata: dependencies, conffile, maintainer scripts", async () => {
    const depends = (await run("dpkg-deb", ["-f", pkgs.deb, "Depends"])).stdout
    for (const dep of ["adduser", "iproute2", "iputils-arping", "libc6", "libstdc++6"]) {
      assert.match(depends, new RegExp(`(^|, )${dep.replace("+", "\\+")}\\b`), depends)
    }
    const control = join(scratch, "deb-control")
    await run("dpkg-deb", ["-e", pkgs.deb, control])
    assert.equal((await readFile(join(control, "conffiles"), "utf8")).trim(), CONFIG)
    const prerm = await readFile(join(control, "prerm"), "utf8")
    assert.match(prerm, /remove\)[\s\S]*deb-systemd-invoke stop mha-agent\.service/)
    const postrm = await readFile(join(control, "postrm"), "utf8")
    assert.match(postrm, /purge\)[\s\S]*rm -rf \/var\/lib\/mha-agent[\s\S]*deluser --system/)
    const files = (await run("dpkg-deb", ["-c", pkgs.deb])).stdout
    for (const f of [
      "./usr/bin/mha-agent",
      "./lib/systemd/system/mha-agent.service",
      `.${CONFIG}`,
      "./usr/share/doc/mha-agent/haproxy.cfg.example",
      "./usr/share/doc/mha-agent/copyright",
      "./usr/share/man/man1/mha-agent.1.gz",
      "./usr/share/mha-agent/prometheus/mha-agent-alerts.yml",
      "./usr/share/mha-agent/prometheus/mha-agent-alerts.test.yml",
      "./usr/share/mha-agent/grafana/mha-agent-dashboard.json",
    ]) {
      assert.ok(files.includes(` ${f}\n`), `${f} missing from the .deb:\n${files}`)
    }
    assert.match(files, /-rwxr-xr-x root\/root .* \.\/usr\/bin\/mha-agent\n/)
  })

  test("lintian reports nothing beyond the package's overrides", {
    skip: !has("lintian") && "lintian is not installed (apt-get install -y lintian)",
    timeout: 5 * 60_000,
  }, async () => {
    const r = await timed("lintian", () =>
      exec("lintian", ["--fail-on", "error,warning", "--pedantic", pkgs.deb], {
        timeoutMs: 5 * 60_000,
      }),
    )
    const findings = r.stdout
      .split("\n")
      .filter((l) => /^[EWIPX]: /.test(l))
      .join("\n")
    assert.equal(r.code, 0, `lintian failed:\n${r.stdout}${r.stderr}`)
    assert.equal(findings, "", `lintian findings:\n${findings}`)
  })

  test("installs with apt-get into bookworm, pulling in its dependencies", async () => {
    const r = await timed("apt-get install", () =>
      inRoot(root, ["apt-get", "install", "-y", `/tmp/pkg/${basename(pkgs.deb)}`]),
    )
    assert.equal(r.code, 0, `apt-get install failed:\n${r.stdout}${r.stderr}`)
    const status = await inRootOk(root, ["dpkg-query", "-W", STATUS_VERSION, "mha-agent"])
    assert.equal(status.stdout, `install ok installed ${pkgs.version}-1`)
    // What the agent and its unit call: ip and arping (VIP), kill (ExecReload).
    for (const tool of ["ip", "arping", "kill"]) {
      const found = await inRoot(root, ["sh", "-c", `command -v ${tool}`])
      assert.equal(found.code, 0, `${tool} is missing after the install`)
    }
  })

  test("mha-agent version: the package's version, the commit, Node 24", async () => {
    const r = await inRootOk(root, ["mha-agent", "version", "--json"])
    const info = JSON.parse(r.stdout) as { version: string; commit: string; node: string }
    assert.equal(info.version, pkgs.version)
    assert.match(info.commit, /^([0-9a-f]{12}(-dirty)?|unknown)$/)
    assert.ok(info.node.startsWith(NODE_VERSION), info.node)
    const human = await inRootOk(root, ["mha-agent", "version"])
    assert.match(human.stdout, new RegExp(`^mha-agent ${pkgs.version}\\ncommit: `))
  })

  test("mha-agent check-config accepts the installed example", async () => {
    const r = await inRootOk(root, ["mha-agent", "check-config", "--config", CONFIG])
    assert.match(r.stdout, /^config OK: \/etc\/mha-agent\/config\.yaml\n/)
    const bad = await inRoot(root, ["mha-agent", "check-config", "--config", "/etc/hostname"])
    assert.equal(bad.code, 1, bad.stderr)
    assert.match(bad.stderr, /^invalid config \/etc\/hostname/)
    // The daemon refuses a bad config with one clear message (never started
    // on the example config here: that would start an agent in the chroot).
    const daemon = await inRoot(root, ["mha-agent", "run", "--config", "/etc/hostname"])
    assert.notEqual(daemon.code, 0)
    assert.match(daemon.stderr, /^mha-agent run: .*(invalid|not built)/)
  })

  test("a system user, its state directory, the conffile, the unit", async () => {
    const user = await passwdEntry(root, "mha-agent")
    assert.ok(user !== undefined, "no mha-agent user")
    assert.ok(user.uid > 0 && user.uid < 1000, `not a system uid: ${user.uid}`)
    assert.equal(user.home, "/var/lib/mha-agent")
    assert.equal(user.shell, "/usr/sbin/nologin")
    assert.ok(await groupExists(root, "mha-agent"), "no mha-agent group")
    uid = user.uid
    const state = await stat(join(root, "var/lib/mha-agent"))
    assert.equal(state.mode & 0o7777, 0o750)
    assert.equal(state.uid, user.uid)
    assert.equal(state.gid, user.gid)
    const conffiles = await inRootOk(root, ["dpkg-query", "-W", CONFFILES, "mha-agent"])
    assert.match(conffiles.stdout, /^ \/etc\/mha-agent\/config\.yaml [0-9a-f]{32}$/m)
    const unit = await readFile(join(root, "lib/systemd/system/mha-agent.service"), "utf8")
    assert.match(unit, /^ExecStart=\/usr\/bin\/mha-agent run$/m)
    assert.match(unit, /^User=mha-agent$/m)
    // Fewer malloc arenas: part of what the agent costs at rest (issue 12).
    assert.match(unit, /^Environment=MALLOC_ARENA_MAX=2$/m)
    assert.ok(existsSync(join(root, "usr/share/doc/mha-agent/haproxy.cfg.example")))
    // The shipped alerts and dashboard, installed as built (test/unit/alerts.test.ts checks their content).
    for (const f of [
      "prometheus/mha-agent-alerts.yml",
      "prometheus/mha-agent-alerts.test.yml",
      "grafana/mha-agent-dashboard.json",
    ])
      assert.equal(
        await readFile(join(root, "usr/share/mha-agent", f), "utf8"),
        await readFile(join(import.meta.dirname, "../../packaging", f), "utf8"),
        `/usr/share/mha-agent/${f}`,
      )
    // Not enabled, not started: the example config is not this host's yet.
    assert.ok(
      !existsSync(join(root, "etc/systemd/system/multi-user.target.wants/mha-agent.service")),
    )
  })

  test("the installed unit passes systemd-analyze verify", {
    skip: !has("systemd-analyze") && "systemd-analyze is missing (apt-get install -y systemd)",
  }, async () => {
    // Verified on the host (the chroot has no systemd), with its binary and
    // man page pointing into the chroot.
    const unit = (await readFile(join(root, "lib/systemd/system/mha-agent.service"), "utf8"))
      .replace("ExecStart=/usr/bin/mha-agent", `ExecStart=${root}/usr/bin/mha-agent`)
      .replace("ExecReload=/bin/kill", `ExecReload=${root}/bin/kill`)
    const dir = join(scratch, "unit")
    await mkdir(dir, { recursive: true })
    await writeFile(join(dir, "mha-agent.service"), unit)
    const r = await exec("systemd-analyze", ["verify", join(dir, "mha-agent.service")], {
      env: { MANPATH: join(root, "usr/share/man") },
    })
    assert.equal(r.code, 0, `systemd-analyze verify:\n${r.stdout}${r.stderr}`)
    assert.equal(r.stderr.trim(), "")
  })

  test("an upgrade to a newer version keeps the modified config and the state", async () => {
    const changed = await modifyConfig(root)
    await writeFile(join(root, "var/lib/mha-agent/hard-state"), "term 7\n")
    const r = await timed("apt-get install (upgrade)", () =>
      inRoot(root, ["apt-get", "install", "-y", `/tmp/pkg/${basename(bumped.deb)}`]),
    )
    assert.equal(r.code, 0, `upgrade failed:\n${r.stdout}${r.stderr}`)
    const info = JSON.parse((await inRootOk(root, ["mha-agent", "version", "--json"])).stdout)
    assert.equal(info.version, bumped.version)
    assert.equal(await readFile(join(root, CONFIG), "utf8"), changed)
    for (const leftover of [".dpkg-new", ".dpkg-dist", ".dpkg-old"]) {
      assert.ok(!existsSync(join(root, `${CONFIG}${leftover}`)), `${CONFIG}${leftover} exists`)
    }
    const check = await inRootOk(root, ["mha-agent", "check-config"])
    assert.match(check.stdout, /log level debug/)
    assert.equal(await readFile(join(root, "var/lib/mha-agent/hard-state"), "utf8"), "term 7\n")
    assert.equal((await passwdEntry(root, "mha-agent"))?.uid, uid, "the user changed")
  })

  test("remove keeps config, user and state; purge removes them", async () => {
    const removed = await inRoot(root, ["apt-get", "remove", "-y", "mha-agent"])
    assert.equal(removed.code, 0, `remove failed:\n${removed.stdout}${removed.stderr}`)
    assert.ok(!existsSync(join(root, "usr/bin/mha-agent")), "the binary is still there")
    assert.ok(existsSync(join(root, CONFIG)), "remove deleted the config")
    assert.ok((await passwdEntry(root, "mha-agent")) !== undefined, "remove deleted the user")
    assert.ok(existsSync(join(root, "var/lib/mha-agent/hard-state")), "remove deleted the state")
    const status = await inRootOk(root, ["dpkg-query", "-W", STATUS, "mha-agent"])
    assert.equal(status.stdout, "deinstall ok config-files")

    const purged = await inRoot(root, ["apt-get", "purge", "-y", "mha-agent"])
    assert.equal(purged.code, 0, `purge failed:\n${purged.stdout}${purged.stderr}`)
    assert.equal(await passwdEntry(root, "mha-agent"), undefined, "purge left the user")
    assert.ok(!(await groupExists(root, "mha-agent")), "purge left the group")
    assert.ok(!existsSync(join(root, "var/lib/mha-agent")), "purge left the state")
    assert.ok(!existsSync(join(root, CONFIG)), "purge left the config")
    const gone = await inRoot(root, ["dpkg-query", "-W", STATUS, "mha-agent"])
    assert.ok(gone.code !== 0 || gone.stdout.includes("not-installed"), gone.stdout)
  })
})

describe("the .rpm", { skip, timeout: 20 * 60_000 }, () => {
  let root = ""

  before(async () => {
    root = await timed("fresh bookworm root", () => freshRoot("rpm", log))
  })
  after(async () => {
    if (root !== "") await rm(root, { recursive: true, force: true })
  })

  const rpm = (args: ReadonlyArray<string>) => exec("rpm", args, { timeoutMs: 300_000 })
  const rpmOk = async (args: ReadonlyArray<string>) => {
    const r = await rpm(args)
    assert.equal(r.code, 0, `rpm ${args.join(" ")}:\n${r.stdout}${r.stderr}`)
    return r.stdout
  }

  test("rpm -qlp: the files", async () => {
    const files = (await rpmOk(["-qlp", pkgs.rpm])).trim().split("\n").sort()
    assert.deepEqual(files, [
      "/etc/mha-agent",
      CONFIG,
      "/usr/bin/mha-agent",
      "/usr/lib/systemd/system/mha-agent.service",
      "/usr/share/doc/mha-agent",
      "/usr/share/doc/mha-agent/README",
      "/usr/share/doc/mha-agent/copyright",
      "/usr/share/doc/mha-agent/haproxy.cfg.example",
      "/usr/share/doc/mha-agent/polkit-mha-agent.rules",
      "/usr/share/man/man1/mha-agent.1.gz",
      "/usr/share/mha-agent",
      "/usr/share/mha-agent/grafana",
      "/usr/share/mha-agent/grafana/mha-agent-dashboard.json",
      "/usr/share/mha-agent/prometheus",
      "/usr/share/mha-agent/prometheus/mha-agent-alerts.test.yml",
      "/usr/share/mha-agent/prometheus/mha-agent-alerts.yml",
      "/var/lib/mha-agent",
    ])
    const flags = await rpmOk(["-qp", "--qf", "[%{FILENAMES} %{FILEFLAGS:fflags}\n]", pkgs.rpm])
    assert.match(
      flags,
      /^\/etc\/mha-agent\/config\.yaml cn$/m,
      "the config is not %config(noreplace)",
    )
    const modes = await rpmOk([
      "-qp",
      "--qf",
      "[%{FILENAMES} %{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME}\n]",
      pkgs.rpm,
    ])
    assert.match(modes, /^\/var\/lib\/mha-agent drwxr-x--- mha-agent mha-agent$/m)
    assert.match(modes, /^\/usr\/bin\/mha-agent -rwxr-xr-x root root$/m)
  })

  test("rpm -qp --scripts: user in %pre, systemd by hand, stop only on erase", async () => {
    const scripts = await rpmOk(["-qp", "--scripts", pkgs.rpm])
    assert.match(
      scripts,
      /preinstall scriptlet[\s\S]*groupadd -r mha-agent[\s\S]*useradd -r -g mha-agent/,
    )
    assert.match(scripts, /postinstall scriptlet[\s\S]*systemctl daemon-reload/)
    assert.match(
      scripts,
      /preuninstall scriptlet[\s\S]*"\$1" -eq 0[\s\S]*systemctl --no-reload disable --now mha-agent\.service/,
    )
    assert.match(scripts, /postuninstall scriptlet[\s\S]*systemctl daemon-reload/)
    const code = scripts
      .split("\n")
      .filter((l) => !l.trimStart().startsWith("#"))
      .join("\n")
    assert.doesNotMatch(code, /userdel|try-restart/)
  })

  test("rpm -qp --requires: iproute, iputils, shadow-utils and glibc's libraries, no Node", async () => {
    const requires = (await rpmOk(["-qp", "--requires", pkgs.rpm])).split("\n")
    for (const dep of [
      "iproute",
      "iputils",
      "shadow-utils",
      "/bin/sh",
      "libc.so.6(GLIBC_2.28)(64bit)",
      "libstdc++.so.6()(64bit)",
    ]) {
      assert.ok(requires.includes(dep), `${dep} is not required:\n${requires.join("\n")}`)
    }
    assert.ok(!requires.some((r) => /node/i.test(r)), "requires Node")
    const provides = (await rpmOk(["-qp", "--provides", pkgs.rpm])).trim().split("\n")
    assert.ok(
      provides.every((p) => p.startsWith("mha-agent")),
      provides.join("\n"),
    )
  })

  test("rpmlint reports nothing beyond the package's filters", {
    skip: !has("rpmlint") && "rpmlint is not installed (apt-get install -y rpmlint)",
  }, async () => {
    const r = await timed("rpmlint", () =>
      exec("rpmlint", ["-r", "packaging/rpm/mha-agent.rpmlintrc", pkgs.rpm]),
    )
    assert.equal(r.code, 0, `rpmlint:\n${r.stdout}${r.stderr}`)
    assert.match(r.stdout, /0 errors, 0 warnings/, r.stdout)
  })

  test("installs into an rpm --root database, upgrades keeping the config, erases", async () => {
    await rpmOk(["--root", root, "--initdb"])
    await timed("rpm -i", () => rpmOk(["--root", root, "--nodeps", "-i", pkgs.rpm]))
    assert.equal(
      (await rpmOk(["--root", root, "-q", "--qf", "%{VERSION}", "mha-agent"])).trim(),
      pkgs.version,
    )
    const user = await passwdEntry(root, "mha-agent")
    assert.ok(user !== undefined, "%pre made no mha-agent user")
    assert.ok(user.uid > 0 && user.uid < 1000, `not a system uid: ${user.uid}`)
    const state = await stat(join(root, "var/lib/mha-agent"))
    assert.equal(state.mode & 0o7777, 0o750)
    assert.equal(state.uid, user.uid)
    assert.ok(existsSync(join(root, "usr/lib/systemd/system/mha-agent.service")))
    const info = JSON.parse((await inRootOk(root, ["mha-agent", "version", "--json"])).stdout)
    assert.equal(info.version, pkgs.version)
    await inRootOk(root, ["mha-agent", "check-config"])

    const changed = await modifyConfig(root)
    await timed("rpm -U", () => rpmOk(["--root", root, "--nodeps", "-U", bumped.rpm]))
    assert.equal(
      (await rpmOk(["--root", root, "-q", "--qf", "%{VERSION}", "mha-agent"])).trim(),
      bumped.version,
    )
    assert.equal(await readFile(join(root, CONFIG), "utf8"), changed)
    assert.ok(
      !existsSync(join(root, `${CONFIG}.rpmnew`)),
      "an unchanged packaged config made .rpmnew",
    )
    assert.equal(
      JSON.parse((await inRootOk(root, ["mha-agent", "version", "--json"])).stdout).version,
      bumped.version,
    )

    await rpmOk(["--root", root, "-e", "mha-agent"])
    assert.ok(!existsSync(join(root, "usr/bin/mha-agent")), "the binary is still there")
    // rpm has no purge: a changed config is kept as .rpmsave, the user stays.
    assert.equal(await readFile(join(root, `${CONFIG}.rpmsave`), "utf8"), changed)
    assert.ok((await passwdEntry(root, "mha-agent")) !== undefined)
  })
})
