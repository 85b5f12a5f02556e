package query

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Synthetic peers: the records the simulator and the embedded demo give their
// peers. Each is a machine of one of four classes (phone-like device,
// laptop, desktop, home server) with realistic, heterogeneous resources.
// Synthetic(seed, i) depends only on its arguments, so the same seed gives
// the same cluster on every run.

type machineClass struct {
	name        string
	weight      float64
	cores       []float64
	memGiB      []float64
	diskGB      []float64
	loadMean    float64 // mean cpu_load
	uptimeMeanH float64 // mean uptime, hours
	reliability float64 // mean share of the week up
	arm         float64 // share of arm64
	os          []string
}

var classes = []machineClass{
	{"phone", 0.25, []float64{4, 6, 8}, []float64{3, 4, 6, 8, 12}, []float64{64, 128, 256}, 0.35, 6, 0.55, 1, []string{"android"}},
	{"laptop", 0.35, []float64{4, 8, 12, 16}, []float64{8, 16, 32}, []float64{256, 512, 1000}, 0.25, 20, 0.70, 0.3, []string{"linux", "windows", "darwin"}},
	{"desktop", 0.25, []float64{6, 8, 12, 16, 24}, []float64{16, 32, 64}, []float64{500, 1000, 2000}, 0.20, 60, 0.85, 0.05, []string{"linux", "windows"}},
	{"server", 0.15, []float64{4, 8, 16, 32, 64}, []float64{16, 32, 64, 128, 256}, []float64{2000, 4000, 8000, 16000}, 0.30, 400, 0.97, 0.2, []string{"linux"}},
}

var regions = []struct {
	name   string
	weight float64
}{{"eu", 0.35}, {"us", 0.30}, {"asia", 0.25}, {"sa", 0.06}, {"af", 0.04}}

// SyntheticName is the node name of synthetic peer i.
func SyntheticName(i int) string { return fmt.Sprintf("peer-%06d", i) }

// Synthetic returns the record of synthetic peer i for a seed: its node name
// (SyntheticName), tags (region, zone, arch, os, class) and resources.
func Synthetic(seed uint64, i int) Record {
	r := rand.New(rand.NewPCG(seed, uint64(i)))
	c := pickClass(r)
	region := pickRegion(r)
	pick := func(xs []float64) float64 { return xs[r.IntN(len(xs))] }
	arch := "amd64"
	if r.Float64() < c.arm {
		arch = "arm64"
	}
	memTotal := pick(c.memGiB) * (1 << 30)
	diskTotal := pick(c.diskGB) * 1e9
	rel := 1 - (1-c.reliability)*r.ExpFloat64()
	return Record{
		"node":        Str(SyntheticName(i)),
		"addr":        Str(fmt.Sprintf("10.%d.%d.%d:7946", i>>16&255, i>>8&255, i&255)),
		"region":      Str(region),
		"zone":        Str(fmt.Sprintf("%s-%c", region, 'a'+r.IntN(3))),
		"arch":        Str(arch),
		"os":          Str(c.os[r.IntN(len(c.os))]),
		"class":       Str(c.name),
		"cpu_cores":   Num(KindCount, pick(c.cores)),
		"cpu_load":    Num(KindRatio, math.Min(c.loadMean*r.ExpFloat64(), 4)),
		"mem_total":   Num(KindBytes, memTotal),
		"mem_free":    Num(KindBytes, math.Round(memTotal*(0.05+0.8*r.Float64()))),
		"disk_total":  Num(KindBytes, diskTotal),
		"disk_free":   Num(KindBytes, math.Round(diskTotal*(0.05+0.9*r.Float64()))),
		"uptime":      Num(KindDuration, math.Round(c.uptimeMeanH*3600*r.ExpFloat64())),
		"reliability": Num(KindRatio, math.Max(0, math.Min(1, rel))),
		"rtt":         Num(KindDuration, 0.005+0.295*r.Float64()),
		"reserved":    Bool(false),
	}
}

func pickClass(r *rand.Rand) machineClass {
	x := r.Float64()
	for _, c := range classes {
		if x < c.weight {
			return c
		}
		x -= c.weight
	}
	return classes[len(classes)-1]
}

func pickRegion(r *rand.Rand) string {
	x := r.Float64()
	for _, g := range regions {
		if x < g.weight {
			return g.name
		}
		x -= g.weight
	}
	return regions[len(regions)-1].name
}

// Drift moves a synthetic record's dynamic attributes by dt seconds of
// simulated time: load and free memory and disk wander, uptime grows.
func Drift(rec Record, r *rand.Rand, dt float64) {
	walk := func(name string, scale, lo, hi float64) {
		v, ok := rec[name]
		if !ok {
			return
		}
		v.Num = math.Max(lo, math.Min(hi, v.Num+scale*r.NormFloat64()*math.Sqrt(dt/60)))
		rec[name] = v
	}
	walk("cpu_load", 0.05, 0, 4)
	walk("mem_free", 0.02*rec["mem_total"].Num, 0, rec["mem_total"].Num)
	walk("disk_free", 0.001*rec["disk_total"].Num, 0, rec["disk_total"].Num)
	if u, ok := rec["uptime"]; ok {
		u.Num += dt
		rec["uptime"] = u
	}
}
