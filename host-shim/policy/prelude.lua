-- SPDX-License-Identifier: GPL-2.0-or-later
-- Loaded into every policy's state before the policy: paper 003's
-- peacemaker helpers (get_nr_kvms, get_max/min_kvms_usage/nice/prio,
-- get_physical_cpus_loadavg) written over vshare.vms() and vshare.host().
local vs = vshare

function vs.nr_vms()
  return #vs.vms()
end

-- 1, 5 and 15 minute load averages of the host, and its pCPU count
function vs.loadavg()
  local h = vs.host() or {}
  local l = h.loadavg or {}
  return l[1] or 0, l[2] or 0, l[3] or 0, h.ncpus or 1
end

-- the VM for which key(vm) is largest (better = ">") or smallest ("<");
-- ties go to the first name in order, so a policy is deterministic
local function pick(key, larger)
  local best, bv
  for _, v in ipairs(vs.vms()) do
    local k = key(v)
    if k ~= nil and (bv == nil or (larger and k > bv) or
                     (not larger and k < bv) or
                     (k == bv and v.name < best.name)) then
      best, bv = v, k
    end
  end
  return best
end

-- the 1-, 5- or 15-minute load average per pCPU (the default 15)
function vs.load_per_cpu(window)
  local l1, l5, l15, ncpus = vs.loadavg()
  local l = ({ [1] = l1, [5] = l5 })[window] or l15
  return l / math.max(ncpus, 1)
end

local function usage(v) return v.usage end
local function weight(v) return v.weight end
local function nice(v) return v.nice end
-- kernel priority: a lower nice is a higher priority
local function prio(v) return -(v.nice or 0) end

function vs.max_usage() return pick(usage, true) end
function vs.min_usage() return pick(usage, false) end
function vs.max_weight() return pick(weight, true) end
function vs.min_weight() return pick(weight, false) end
function vs.max_nice() return pick(nice, true) end
function vs.min_nice() return pick(nice, false) end
-- the highest-priority VM (lowest nice) and the lowest-priority one
function vs.max_prio() return pick(prio, true) end
function vs.min_prio() return pick(prio, false) end
