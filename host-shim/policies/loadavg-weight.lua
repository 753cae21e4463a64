-- SPDX-License-Identifier: GPL-2.0-or-later
-- Paper 003's example with cgroup CPU weights instead of nice (cgroup v2's
-- cpu.weight; libvirt's cpu_shares): nice is per thread and a VM's
-- threads may be many; a weight is one number for the VM's cgroup.
--   15-min load above 90 % of the pCPUs: the lowest-weight VM loses a step
--   (weight / 1.25, not below min_weight);
--   below 10 %: the highest-weight VM gains a step (x 1.25, not above
--   max_weight).
local cfg = vshare.config {
  interval = 60,
  window = 15,     -- which load average: 1, 5 or 15 minutes (the paper: 15)
  high = 0.90,
  low = 0.10,
  step = 1.25,
  min_weight = 10,
  max_weight = 1000,
}

vshare.every(cfg.interval, function()
  if vshare.nr_vms() == 0 then return end
  local load = vshare.load_per_cpu(cfg.window)
  if load > cfg.high then
    local vm = vshare.min_weight()
    local w = math.max(cfg.min_weight, math.floor(vm.weight / cfg.step))
    if w < vm.weight then
      vshare.set_weight(vm.name, w, string.format(
        "%d-min load %.0f %% > %.0f %%: lowest-weight VM yields",
        cfg.window, load * 100, cfg.high * 100))
    end
  elseif load < cfg.low then
    local vm = vshare.max_weight()
    local w = math.min(cfg.max_weight, math.ceil(vm.weight * cfg.step))
    if w > vm.weight then
      vshare.set_weight(vm.name, w, string.format(
        "%d-min load %.0f %% < %.0f %%: highest-weight VM gets more",
        cfg.window, load * 100, cfg.low * 100))
    end
  end
end)
