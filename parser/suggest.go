package parser

import "strings"

// Suggest returns the candidate closest to word (case-insensitively) when it
// is near enough to be a likely typo, or "" when none is: within an edit
// distance of 1 for short words and 2 for words of five letters or more.
func Suggest(word string, candidates []string) string {
	w := strings.ToLower(word)
	best, bestD := "", 1<<30
	limit := 1
	if len(w) >= 5 {
		limit = 2
	}
	for _, c := range candidates {
		d := editDistance(w, strings.ToLower(c))
		if d < bestD || d == bestD && c < best {
			best, bestD = c, d
		}
	}
	if bestD == 0 || bestD > limit {
		if bestD == 0 && best != word {
			return best // differs only in case
		}
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
