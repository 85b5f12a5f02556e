package query

// Limits on plans. Compile refuses statements beyond them with an error, and
// Decode refuses plans beyond them from the network, so that a peer's cost
// of joining a query is bounded whoever sent it.
const (
	// MaxPlanBytes is the largest encoded plan.
	MaxPlanBytes = 64 << 10
	// MaxExprDepth is the deepest expression tree (a chain a+b+c+... is as
	// deep as it is long).
	MaxExprDepth = 128
	// MaxExprNodes is the most nodes in all the expressions of a plan.
	MaxExprNodes = 2048
	// MaxK is the largest k of a top-k, LIMIT included.
	MaxK = 2000
	// MaxReserve is the most peers one RESERVE may ask for.
	MaxReserve = 1000
	// MaxGroups is the most groups a GROUP BY may track at once.
	MaxGroups = 256
	// MaxGroupKeys is the most expressions in GROUP BY.
	MaxGroupKeys = 4
	// MaxColumns is the most columns a statement may select.
	MaxColumns = 64
	// MaxAggregates is the most aggregates in one statement.
	MaxAggregates = 32
	// MaxOrderKeys is the most ORDER BY keys.
	MaxOrderKeys = 8
	// MaxInList is the most values in one IN list.
	MaxInList = 256
	// MaxRounds is the largest round budget.
	MaxRounds = 1000
	// MaxStringBytes is the longest string constant or name.
	MaxStringBytes = 1024
	// MaxLeaseSeconds is the longest lease a RESERVE may ask for (30 days);
	// MinLeaseSeconds the shortest (10 s), below which renewals could not
	// keep up over gossip.
	MaxLeaseSeconds = 30 * 86400
	MinLeaseSeconds = 10
)
