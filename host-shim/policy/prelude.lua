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

-- ---- layout helpers (docs/migration.md): over a layout state document ----

-- the host's node numbers, ascending
function vs.node_ids(state)
  local ids = {}
  for n in pairs(((state or {}).host or {}).nodes or {}) do
    ids[#ids + 1] = n
  end
  table.sort(ids)
  return ids
end

-- a VM's vCPU count: `vcpus` is a sequence (vms()) or a count (incoming)
function vs.vm_vcpus(vm)
  local v = vm.vcpus
  if type(v) == "number" then return v end
  if type(v) == "table" and #v > 0 then return #v end
  return math.max(#(vm.pcpus or {}), 1)
end

-- bytes of memory the VM has on node n, and in all
function vs.vm_mem_on(vm, n)
  local e = (vm.nodes or {})[n]
  return e and e.mem or 0
end

function vs.vm_mem(vm)
  if vm.mem then return vm.mem end
  local sum = 0
  for _, e in pairs(vm.nodes or {}) do sum = sum + (e.mem or 0) end
  return sum
end

-- "memory", "cpu" or "unknown" (no profile)
function vs.vm_class(vm)
  local p = vm.profile
  return p and p.class or "unknown"
end

function vs.vm_mpki(vm)
  return (vm.profile or {}).mpki or 0
end

-- the node a resident VM runs on now: the node vshared placed it on
-- (vm.placed), else profile.node, else the node where it owns most
-- pCPUs, then holds most memory, then the lowest; nil for an incoming
-- VM (it has no node here yet)
function vs.vm_home(vm, state)
  if vm.incoming then return nil end
  if vm.placed and state.host.nodes[vm.placed] then return vm.placed end
  local p = vm.profile
  if p and p.node and state.host.nodes[p.node] then return p.node end
  local best, bc, bm
  for _, n in ipairs(vs.node_ids(state)) do
    local e = (vm.nodes or {})[n] or {}
    local c, m = #(e.pcpus or {}), e.mem or 0
    if best == nil or c > bc or (c == bc and m > bm) then
      best, bc, bm = n, c, m
    end
  end
  return best
end

-- what each node offers VMs: {pcpus = count, mem = bytes (math.huge
-- when the document does not say)}
function vs.capacity(state)
  local cap = {}
  for _, n in ipairs(vs.node_ids(state)) do
    local e = state.host.nodes[n]
    cap[n] = { pcpus = #(e.pcpus or {}), mem = e.mem or math.huge }
  end
  return cap
end

function vs.take(cap, n, vm)
  cap[n].pcpus = cap[n].pcpus - vs.vm_vcpus(vm)
  cap[n].mem = cap[n].mem - vs.vm_mem(vm)
end

function vs.fits(cap, n, vm)
  return cap[n].pcpus >= vs.vm_vcpus(vm) and cap[n].mem >= vs.vm_mem(vm)
end

-- the node with the most free pCPUs, then memory, then the lowest number,
-- among those the VM fits; if none fits, the one with the most free
-- pCPUs anyway (second result false)
function vs.roomiest(cap, vm, state)
  local best, fit
  for _, n in ipairs(vs.node_ids(state)) do
    local f = vs.fits(cap, n, vm)
    local c = cap[n]
    if best == nil or (f and not fit) or
       (f == fit and (c.pcpus > cap[best].pcpus or
                      (c.pcpus == cap[best].pcpus and c.mem > cap[best].mem))) then
      best, fit = n, f
    end
  end
  return best, fit
end

function vs.find_vm(state, name)
  for _, vm in ipairs(state.vms or {}) do
    if vm.name == name then return vm end
  end
  return nil
end

function vs.gib(bytes)
  if bytes == math.huge then return "unlimited" end
  return string.format("%.1f GiB", bytes / 2^30)
end
