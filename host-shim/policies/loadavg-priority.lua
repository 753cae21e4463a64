-- SPDX-License-Identifier: GPL-2.0-or-later
-- Paper 003's example policy, as the paper gives it (figure 7):
--   15-minute load average above 90 % of the pCPUs: raise the nice of the
--   lowest-priority VM by 1 (not past 15);
--   below 10 %: lower the nice of the highest-priority VM by 1 (not past
--   -15).
-- Settings (policies.conf, [loadavg-priority]): interval, window, high, low,
-- max_nice, min_nice.
local cfg = vshare.config {
  interval = 60,   -- seconds between two looks
  window = 15,     -- which load average: 1, 5 or 15 minutes (the paper: 15)
  high = 0.90,     -- load per pCPU above which the host is busy
  low = 0.10,      -- below which it is idle
  max_nice = 15,
  min_nice = -15,
}

vshare.every(cfg.interval, function()
  if vshare.nr_vms() == 0 then return end
  local load = vshare.load_per_cpu(cfg.window)
  if load > cfg.high then
    local vm = vshare.min_prio()
    if vm.nice < cfg.max_nice then
      vshare.set_nice(vm.name, vm.nice + 1,
        string.format("%d-min load %.0f %% > %.0f %%: lowest-priority VM "
                      .. "yields", cfg.window, load * 100, cfg.high * 100))
    end
  elseif load < cfg.low then
    local vm = vshare.max_prio()
    if vm.nice > cfg.min_nice then
      vshare.set_nice(vm.name, vm.nice - 1,
        string.format("%d-min load %.0f %% < %.0f %%: highest-priority VM "
                      .. "gets more", cfg.window, load * 100, cfg.low * 100))
    end
  end
end)
