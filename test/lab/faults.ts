// Every fault of lab.md, as a typed value for tests and as a one-line command
// for people (`npm run lab -- fault isolate db1`).

export type LabProcess = "mysqld" | "agent"

export type Fault =
  | { readonly _tag: "KillMysqld"; readonly host: string } // kill -9; the supervisor restarts it
  | { readonly _tag: "StopMysqld"; readonly host: string } // kill -9 and keep it from restarting
  | { readonly _tag: "StartMysqld"; readonly host: string } // undo StopMysqld
  | { readonly _tag: "Pause"; readonly host: string; readonly process: LabProcess } // SIGSTOP
  | { readonly _tag: "Resume"; readonly host: string; readonly process: LabProcess } // SIGCONT
  | { readonly _tag: "KillAgent"; readonly host: string } // kill -9 of the agent process
  | { readonly _tag: "Isolate"; readonly host: string } // no traffic in or out
  | { readonly _tag: "CutOneWay"; readonly from: string; readonly to: string } // from -> to dropped
  | { readonly _tag: "CutAgent"; readonly a: string; readonly b: string } // agent port only, both ways
  | { readonly _tag: "CutReplication"; readonly a: string; readonly b: string } // MySQL port only
  | { readonly _tag: "Loss"; readonly percent: number; readonly hosts: ReadonlyArray<string> } // random drop on input; [] = every host
  | { readonly _tag: "Heal"; readonly hosts: ReadonlyArray<string> } // remove network faults; [] = every host

export const FAULT_USAGE = `faults:
  kill-mysqld H            kill -9 H's mysqld (the supervisor restarts it)
  stop-mysqld H            kill -9 H's mysqld and keep it from restarting
  start-mysqld H           let H's mysqld start again
  pause H mysqld|agent     SIGSTOP the process (a hung server or agent)
  resume H mysqld|agent    SIGCONT it
  kill-agent H             kill -9 H's agent
  isolate H                drop all of H's traffic
  cut A B                  drop packets from A to B (one way)
  cut-agent A B            drop agent traffic between A and B, both ways
  cut-replication A B      drop MySQL traffic between A and B, both ways
  loss PERCENT [H...]      drop PERCENT % of packets arriving at each host (default: all hosts)
  heal [H...]              remove every network fault (default: all hosts)`

const processOf = (word: string | undefined): LabProcess => {
  if (word === "mysqld" || word === "agent") return word
  throw new Error(`expected 'mysqld' or 'agent', got '${word ?? ""}'`)
}

const need = (args: ReadonlyArray<string>, n: number, usage: string): void => {
  if (args.length < n) throw new Error(`usage: ${usage}`)
}

/** Parses a fault command line; throws with the usage line when it is wrong. */
export const parseFault = (args: ReadonlyArray<string>): Fault => {
  const [verb, ...rest] = args
  const a = rest[0] ?? ""
  const b = rest[1] ?? ""
  switch (verb) {
    case "kill-mysqld":
      need(rest, 1, "kill-mysqld HOST")
      return { _tag: "KillMysqld", host: a }
    case "stop-mysqld":
      need(rest, 1, "stop-mysqld HOST")
      return { _tag: "StopMysqld", host: a }
    case "start-mysqld":
      need(rest, 1, "start-mysqld HOST")
      return { _tag: "StartMysqld", host: a }
    case "pause":
      need(rest, 2, "pause HOST mysqld|agent")
      return { _tag: "Pause", host: a, process: processOf(b) }
    case "resume":
      need(rest, 2, "resume HOST mysqld|agent")
      return { _tag: "Resume", host: a, process: processOf(b) }
    case "kill-agent":
      need(rest, 1, "kill-agent HOST")
      return { _tag: "KillAgent", host: a }
    case "isolate":
      need(rest, 1, "isolate HOST")
      return { _tag: "Isolate", host: a }
    case "cut":
      need(rest, 2, "cut FROM TO")
      return { _tag: "CutOneWay", from: a, to: b }
    case "cut-agent":
      need(rest, 2, "cut-agent A B")
      return { _tag: "CutAgent", a, b }
    case "cut-replication":
      need(rest, 2, "cut-replication A B")
      return { _tag: "CutReplication", a, b }
    case "loss": {
      need(rest, 1, "loss PERCENT [HOST...]")
      const percent = Number(a)
      if (!Number.isFinite(percent) || percent < 0 || percent > 100) {
        throw new Error(`loss: PERCENT must be a number from 0 to 100, got '${a}'`)
      }
      return { _tag: "Loss", percent, hosts: rest.slice(1) }
    }
    case "heal":
      return { _tag: "Heal", hosts: rest }
    default:
      throw new Error(`unknown fault '${verb ?? ""}'\n${FAULT_USAGE}`)
  }
}
