package spawn

// Containment is what Contain set up; Close releases it.
type Containment struct {
	// Cgroups is true when every child runs in a cgroup of its own (Linux,
	// with a writable cgroup v2 hierarchy); false when process groups, the
	// subreaper and the keeper are all there is.
	Cgroups bool
	// Keeper is the pid of the process that cleans up if this one dies, or
	// 0 when there is none.
	Keeper int

	close func() error
}

// Close stops the orphans that are left, ends the keeper and removes the
// cgroups. Call it once every child has been reaped (each Actor's Wait has
// returned). It is safe to call on a nil Containment.
func (c *Containment) Close() error {
	if c == nil || c.close == nil {
		return nil
	}
	return c.close()
}
