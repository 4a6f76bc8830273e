/**
 * A minimal valid config file of member db1 (db1..db3 unless `members`, the
 * YAML list items, is given), with `extra` appended at the top level.
 */
export const minimal = (extra = "", members?: string): string => `cluster:
  name: prod
  members:
${
  members ??
  `    - name: db1
      address: 10.0.0.11
      agent_port: 7946
    - name: db2
      address: 10.0.0.12
      agent_port: 7946
    - name: db3
      address: 10.0.0.13
      agent_port: 7946
`
}node: db1
mysql:
  monitor:
    user: mha
    password_file: /etc/mha-agent/monitor.password
  replication:
    user: repl
    password_file: /etc/mha-agent/replication.password
  get_source_public_key: true
mesh:
  ca: /etc/mha-agent/tls/ca.pem
  cert: /etc/mha-agent/tls/db1.pem
  key: /etc/mha-agent/tls/db1.key
${extra}`
