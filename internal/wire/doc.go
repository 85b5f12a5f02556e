// Package wire holds what the hand-written wire formats share (aggregate,
// topk, the node's exchange batch, the overlay's frame): varints with one
// encoding each, and a Reader whose first failure sticks, so that every
// decoder bounds lengths the same way and none can panic on hostile input.
// Standard library only, no I/O.
package wire
