-- SPDX-License-Identifier: GPL-2.0-or-later
-- Elastic lending (paper 003's engine, vshare's promise): a pCPU whose
-- vCPU its owner leaves idle goes to the VM that wants more, and comes
-- back as soon as its owner is busy again. No hotplug: the owner's guest
-- keeps the vCPU and only stops using it (coop), or the host throttles it
-- (enforce), exactly as `vsharectl lend` does.
--
-- Each sample (every `interval` seconds):
--   1. reclaim: a lent pCPU whose owner's own vCPUs are busy (mean guest
--      busy >= reclaim), or whose parked owner's throttled vCPU threads
--      want to run (`throttled` of the time, `starved_samples` samples in
--      a row), goes back at once (no cooldown: the owner comes first);
--   2. a vCPU counts as idle when the guest reports idle >= `idle` (the
--      host's view of its thread when the agent does not answer);
--   3. lend: the VM with the highest demand (mean guest busy over its own
--      vCPUs >= busy, or throttled vCPU threads wanting to run) gets one
--      pCPU idle for `idle_samples` samples in a row from another VM,
--      which keeps at least `floor` pCPUs (never more than it had when
--      the policy first saw it); then `cooldown` seconds pass before the
--      next lend. Borrowed pCPUs are never lent on.
-- Loans live in this policy's state: after a restart of vshared they are
-- not known any more and stay where they are (the ledger is consistent;
-- `vsharectl lend` moves them back).
local cfg = vshare.config {
  interval = 0.25,
  idle = 0.80,
  idle_samples = 3,
  busy = 0.80,
  reclaim = 0.50,
  throttled = 0.50,
  starved_samples = 2,
  floor = 1,
  cooldown = 1.0,
  mode = "auto",
}

local idle_run = {}   -- "vm/pcpu" -> idle samples in a row
local starve_run = {} -- vm -> samples in a row with throttled demand
local loans = {}      -- { home =, to =, cpu = }
local first = {}      -- vm -> pCPUs it owned when first seen
local last_lend = -math.huge

local function pct(x)
  return x and string.format("%.0f %%", x * 100) or "?"
end

local function own(vm)
  local out = {}
  for _, c in ipairs(vm.vcpus or {}) do
    if c.owned then out[#out + 1] = c end
  end
  return out
end

-- mean use of the VM's own vCPUs (guest view first), nil if unknown
local function load(vm)
  local sum, n = 0, 0
  for _, c in ipairs(own(vm)) do
    local b = c.busy or c.usage
    if b then sum, n = sum + b, n + 1 end
  end
  return n > 0 and sum / n or nil
end

-- throttled vCPU threads that want to run: demand the guest cannot show
-- (a VM just parked finishes what it was doing for a moment: only
-- `starved_samples` samples in a row count)
local function throttled_now(vm)
  for _, c in ipairs(vm.vcpus or {}) do
    if c.throttled and (c.throttled_ratio or 0) >= cfg.throttled then
      return true
    end
  end
  return false
end

local function starved(vm)
  return (starve_run[vm.name] or 0) >= cfg.starved_samples
end

local function demand(vm)
  return (load(vm) or 0) + (starved(vm) and 1 or 0)
end

local function wants_more(vm)
  local l = load(vm)
  return vm.managed and (starved(vm) or (l ~= nil and l >= cfg.busy))
end

local function owns(vm, cpu)
  for _, c in ipairs(vm.pcpus) do
    if c == cpu then return true end
  end
  return false
end

local function borrowed(vm, cpu)
  for _, l in ipairs(loans) do
    if l.to == vm and l.cpu == cpu then return true end
  end
  return false
end

local function reclaim(by)
  for i = #loans, 1, -1 do
    local l = loans[i]
    local home, to = by[l.home], by[l.to]
    if not home or not to or not owns(to, l.cpu) then
      table.remove(loans, i)   -- gone, or moved by someone else
    elseif starved(home) or (load(home) or 0) >= cfg.reclaim then
      local ok = vshare.reclaim(l.to, l.home, { cpus = { l.cpu },
                                                mode = cfg.mode },
        string.format("%s needs pCPU %d again (own vCPUs %s busy)",
                      l.home, l.cpu, pct(load(home))))
      if ok then
        table.remove(loans, i)
        idle_run[l.home .. "/" .. l.cpu] = 0
      end
      return true   -- ownership changed: look again next sample
    end
  end
  return false
end

local function count_idle(vms)
  for _, vm in ipairs(vms) do
    starve_run[vm.name] = throttled_now(vm)
                          and (starve_run[vm.name] or 0) + 1 or 0
    for _, c in ipairs(own(vm)) do
      local key = vm.name .. "/" .. c.pcpu
      local idle = c.idle or (c.usage and 1 - c.usage)
      idle_run[key] = (idle and idle >= cfg.idle)
                      and (idle_run[key] or 0) + 1 or 0
    end
  end
end

local function receiver(vms)
  local best, score
  for _, vm in ipairs(vms) do
    if wants_more(vm) and (not best or demand(vm) > score) then
      best, score = vm, demand(vm)
    end
  end
  return best
end

-- the giver and pCPU: idle long enough, above the giver's floor
local function donor(vms, to)
  local need = vshare.dry_run and 1 or cfg.idle_samples
  local from, cpu
  for _, vm in ipairs(vms) do
    local floor = math.min(cfg.floor, first[vm.name] or 0)
    if vm.name ~= to.name and vm.managed and not wants_more(vm)
       and #vm.pcpus > floor then
      for _, c in ipairs(own(vm)) do
        if (idle_run[vm.name .. "/" .. c.pcpu] or 0) >= need
           and not borrowed(vm.name, c.pcpu)
           and (not cpu or c.pcpu > cpu) then
          from, cpu = vm, c.pcpu
        end
      end
    end
  end
  return from, cpu
end

vshare.every(cfg.interval, function()
  local vms, by = vshare.vms(), {}
  for _, vm in ipairs(vms) do
    by[vm.name] = vm
    if vm.managed and first[vm.name] == nil then
      first[vm.name] = #vm.pcpus
    end
  end
  count_idle(vms)
  if reclaim(by) then return end
  if vshare.now() - last_lend < cfg.cooldown then return end
  local to = receiver(vms)
  if not to then return end
  local from, cpu = donor(vms, to)
  if not from then return end
  local ok = vshare.lend(from.name, to.name, { cpus = { cpu },
                                               mode = cfg.mode },
    string.format("%s wants more (own vCPUs %s busy%s); %s left vCPU %d "
                  .. "idle for %d samples", to.name, pct(load(to)),
                  starved(to) and ", throttled threads want to run" or "",
                  from.name, cpu, idle_run[from.name .. "/" .. cpu]))
  if ok then
    loans[#loans + 1] = { home = from.name, to = to.name, cpu = cpu }
    last_lend = vshare.now()
    idle_run[from.name .. "/" .. cpu] = 0
  end
end)

vshare.on("vm-stopped", function(name)
  for i = #loans, 1, -1 do
    if loans[i].to == name or loans[i].home == name then
      table.remove(loans, i)
    end
  end
  first[name] = nil
  starve_run[name] = nil
end)
