// Package report presents simulations for people: the table of rounds
// (messages, bytes, errors, and where the engine's convergence rule fires),
// the summary (rounds to each accuracy, the rule's round next to the round
// the answer is truly within target), CSV and a PNG plot (gonum/plot). It
// is apart from package sim so that the simulator itself carries no
// plotting dependency.
package report
