-- SPDX-License-Identifier: GPL-2.0-or-later
-- A template that only looks: what a policy can read, logged once a
-- minute (and on every VM event). Copy it to /etc/vshare/policies/ under
-- a new name, enable it (vsharectl policy enable NAME), and try it with
-- vsharectl policy dry-run NAME.
local cfg = vshare.config { interval = 60 }

local function pct(x)
  return x and string.format("%.0f%%", x * 100) or "?"
end

vshare.every(cfg.interval, function()
  local l1, l5, l15, ncpus = vshare.loadavg()
  vshare.log(string.format("host: %d pCPUs, load %.2f %.2f %.2f, %d VMs",
                           ncpus, l1, l5, l15, vshare.nr_vms()))
  for _, vm in ipairs(vshare.vms()) do
    vshare.log(string.format(
      "%s: %s, pCPUs {%s}, weight %d, nice %d, host use %.2f pCPUs, "
      .. "guest busy %s, agent %s", vm.name, vm.mode,
      table.concat(vm.pcpus, ","), vm.weight, vm.nice, vm.usage or 0,
      pct(vm.busy), vm.agent and "up" or "down"))
  end
end)

for _, ev in ipairs { "vm-started", "vm-stopped", "vm-migrated",
                      "agent-lost" } do
  vshare.on(ev, function(vm) vshare.log(ev .. ": " .. vm) end)
end
