// Command peerq is the query engine for peer-to-peer clouds: an agent per
// machine (peerq agent), the interactive shell and scripts against it
// (peerq shell, peerq query), an embedded cluster of real Serf peers to try
// it on (peerq demo), and the tools around the language and the protocols
// (peerq explain, peerq check, peerq sim).
//
// It is flags and wiring only: settings are parsed here (the agent's typed
// config file, HCL or JSON: config.go; flags on top), exit codes are given here (exitFor), and the
// work is in the packages — node (the runtime), server (its HTTP API and
// web console), api (the client), shell (the REPL, script runner and
// renderers), probe (the machine), sim and sim/report (the simulator and
// its tables and plots), query (the language's compiler). It imports no
// protocol core, no overlay and no parser.
package main
